"""Alerts matched to labels: precision, recall, F1, latency per scenario type; benign alert rate.

**Matching.** An alert matches a label when tenant and subject are the same and the alert's
window ``[window_start, window_end]`` overlaps the label's (widened by ``grace``), or when its
evidence holds one of the label's events (an alert about the attacker's address for an attack
labelled by its victim is about the same attack). What the match means depends on the
alert's rule:

- a rule the attack label *expects*: a **hit** (true positive; several hits of one label are
  one detection, and none of them is a false positive);
- a rule the attack label *tolerates* (a brute-forced sign-in from abroad is also a new
  country): a **side effect**, neither true nor false positive;
- anything else, on a benign look-alike or on background activity: a **false positive**.

**Per attack type** (its rule R): recall = labels with a hit / labels; precision = hits /
(hits + false positives of R anywhere in the run); F1 their harmonic mean; latency = for each
detected label, its first hit's arrival on the alert topic minus the moment the SDK accepted
the newest of the alert's evidence events that the label knows (wall clock), p50 and p95.

**Per look-alike type**: how many stayed quiet (no alert but tolerated ones).

**Benign alert rate**: false positives (all rules) per 10,000 benign actor-days; an actor-day
is one user active on one local date of background work.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from auditstream.simulation.labels import Kind, Label
from auditstream.simulation.scenarios import ATTACKS, LOOKALIKES

TARGET = 0.95
GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class SeenAlert:
    """An alert as the evaluation saw it arrive."""

    alert_id: str
    rule: str
    tenant_id: str
    subject: str
    window_start: datetime
    window_end: datetime
    evidence: tuple[str, ...]
    seen_ms: int
    """When it arrived on the alert topic (wall clock, Unix ms)."""
    title: str = ""

    @classmethod
    def from_alert(cls, doc: dict[str, Any], seen_ms: int) -> SeenAlert:
        return cls(
            alert_id=str(doc["alert_id"]),
            rule=doc["rule"],
            tenant_id=doc["tenant_id"],
            subject=doc["subject"],
            window_start=_ts(doc["window_start"]),
            window_end=_ts(doc["window_end"]),
            evidence=tuple(str(e) for e in doc.get("evidence_event_ids", ())),
            seen_ms=seen_ms,
            title=doc.get("title", ""),
        )


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Match:
    alert: SeenAlert
    label: Label | None
    relation: str
    """``hit``, ``side_effect``, ``tolerated`` (on a look-alike), or ``false_positive``."""


@dataclass(frozen=True)
class TypeResult:
    type: str
    rule: str
    labels: int
    detected: int
    hits: int
    false_positives: int
    precision: float | None
    recall: float | None
    f1: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    missed: tuple[str, ...] = ()

    @property
    def meets_target(self) -> bool:
        return (
            self.precision is not None
            and self.recall is not None
            and self.precision >= TARGET
            and self.recall >= TARGET
        )


@dataclass(frozen=True)
class LookalikeResult:
    type: str
    rule: str
    labels: int
    quiet: int
    alerts: dict[str, int]
    """Rule -> alerts on these look-alikes that were not tolerated."""
    noisy: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    attacks: list[TypeResult]
    lookalikes: list[LookalikeResult]
    alerts: int
    false_positives: int
    false_positives_by_rule: dict[str, int]
    side_effects_by_rule: dict[str, int]
    actor_days: int
    unexplained: list[SeenAlert] = field(default_factory=list)

    @property
    def per_10k_actor_days(self) -> float | None:
        if self.actor_days <= 0:
            return None
        return self.false_positives / self.actor_days * 10_000

    @property
    def meets_target(self) -> bool:
        return all(t.meets_target for t in self.attacks if t.labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": TARGET,
            "meets_target": self.meets_target,
            "attacks": [
                {
                    "type": t.type,
                    "rule": t.rule,
                    "labels": t.labels,
                    "detected": t.detected,
                    "hits": t.hits,
                    "false_positives": t.false_positives,
                    "precision": t.precision,
                    "recall": t.recall,
                    "f1": t.f1,
                    "latency_p50_s": t.latency_p50_s,
                    "latency_p95_s": t.latency_p95_s,
                    "meets_target": t.meets_target,
                    "missed": list(t.missed),
                }
                for t in self.attacks
            ],
            "lookalikes": [
                {
                    "type": t.type,
                    "rule": t.rule,
                    "labels": t.labels,
                    "quiet": t.quiet,
                    "alerts": t.alerts,
                    "noisy": list(t.noisy),
                }
                for t in self.lookalikes
            ],
            "benign": {
                "actor_days": self.actor_days,
                "false_positives": self.false_positives,
                "per_10k_actor_days": self.per_10k_actor_days,
                "by_rule": self.false_positives_by_rule,
            },
            "side_effects_by_rule": self.side_effects_by_rule,
            "alerts": self.alerts,
            "unexplained": [
                {
                    "rule": a.rule,
                    "tenant_id": a.tenant_id,
                    "subject": a.subject,
                    "window_start": a.window_start.isoformat(),
                    "title": a.title,
                }
                for a in self.unexplained
            ],
        }


def _overlaps(alert: SeenAlert, label: Label, grace: timedelta) -> bool:
    return (
        alert.window_end >= label.window_start - grace
        and alert.window_start <= label.window_end + grace
    )


def match(
    alerts: Iterable[SeenAlert], labels: Iterable[Label], grace: timedelta = GRACE
) -> list[Match]:
    by_subject: dict[tuple[str, str], list[Label]] = defaultdict(list)
    by_event: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_subject[(label.tenant_id, label.subject)].append(label)
        for event_id in label.event_ids:
            by_event[event_id].append(label)
    out = []
    for alert in alerts:
        near = [
            label
            for label in by_subject.get((alert.tenant_id, alert.subject), ())
            if _overlaps(alert, label, grace)
        ]
        for event_id in alert.evidence:
            near += [lb for lb in by_event.get(event_id, ()) if lb not in near]
        out.append(_classify(alert, near))
    return out


def _relation(alert: SeenAlert, label: Label) -> str:
    if label.kind is Kind.ATTACK:
        if alert.rule in label.expect:
            return "hit"
        return "side_effect" if alert.rule in label.tolerate else ""
    return "tolerated" if alert.rule in label.tolerate else "false_positive"


_PRECEDENCE = ("hit", "side_effect", "tolerated", "false_positive")


def _classify(alert: SeenAlert, near: list[Label]) -> Match:
    """The strongest relation to any nearby label (an attack explains more than a look-alike)."""
    found = [(r, lb) for lb in near if (r := _relation(alert, lb))]
    if not found:
        return Match(alert, None, "false_positive")
    relation, label = min(found, key=lambda f: _PRECEDENCE.index(f[0]))
    return Match(alert, label, relation)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(alert: SeenAlert, label: Label) -> int | None:
    """From the SDK accepting the newest evidence event the label knows to the alert's arrival."""
    known = [label.emitted_ms[e] for e in alert.evidence if e in label.emitted_ms]
    if not known and label.emitted_ms:
        known = [max(label.emitted_ms.values())]
    if not known:
        return None
    return alert.seen_ms - max(known)


def evaluate(
    alerts: Sequence[SeenAlert],
    labels: Sequence[Label],
    actor_days: int,
    grace: timedelta = GRACE,
    unexplained_limit: int = 20,
) -> Report:
    first: dict[str, SeenAlert] = {}
    for alert in alerts:  # at-least-once: a re-sent alert keeps its id; count it once
        if alert.alert_id not in first or alert.seen_ms < first[alert.alert_id].seen_ms:
            first[alert.alert_id] = alert
    matches = match(first.values(), labels, grace)
    false_by_rule: dict[str, int] = defaultdict(int)
    side_by_rule: dict[str, int] = defaultdict(int)
    hits_by_label: dict[str, list[SeenAlert]] = defaultdict(list)
    noisy_by_label: dict[str, list[SeenAlert]] = defaultdict(list)
    unexplained = []
    for m in matches:
        if m.relation == "hit" and m.label is not None:
            hits_by_label[m.label.id].append(m.alert)
        elif m.relation == "side_effect":
            side_by_rule[m.alert.rule] += 1
        elif m.relation == "false_positive":
            false_by_rule[m.alert.rule] += 1
            if m.label is not None:
                noisy_by_label[m.label.id].append(m.alert)
            else:
                unexplained.append(m.alert)
        elif m.relation == "tolerated":
            false_by_rule[m.alert.rule] += 1  # benign people got an alert: it counts
    attacks = []
    for name, stype in ATTACKS.items():
        mine = [lb for lb in labels if lb.type == name]
        if not mine:
            continue
        detected = [lb for lb in mine if hits_by_label.get(lb.id)]
        hits = sum(len(hits_by_label.get(lb.id, ())) for lb in mine)
        fps = false_by_rule.get(stype.rule, 0)
        precision = hits / (hits + fps) if hits + fps else None
        recall = len(detected) / len(mine)
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and precision + recall > 0
            else None
        )
        lat = [
            ms / 1000
            for lb in detected
            if (ms := latency_ms(min(hits_by_label[lb.id], key=lambda a: a.seen_ms), lb))
            is not None
        ]
        attacks.append(
            TypeResult(
                type=name,
                rule=stype.rule,
                labels=len(mine),
                detected=len(detected),
                hits=hits,
                false_positives=fps,
                precision=precision,
                recall=recall,
                f1=f1,
                latency_p50_s=percentile(lat, 50),
                latency_p95_s=percentile(lat, 95),
                missed=tuple(lb.id for lb in mine if not hits_by_label.get(lb.id)),
            )
        )
    lookalikes = []
    for name, stype in LOOKALIKES.items():
        mine = [lb for lb in labels if lb.type == name]
        if not mine:
            continue
        rules: dict[str, int] = defaultdict(int)
        for lb in mine:
            for a in noisy_by_label.get(lb.id, ()):
                rules[a.rule] += 1
        lookalikes.append(
            LookalikeResult(
                type=name,
                rule=stype.rule,
                labels=len(mine),
                quiet=sum(1 for lb in mine if not noisy_by_label.get(lb.id)),
                alerts=dict(rules),
                noisy=tuple(lb.id for lb in mine if noisy_by_label.get(lb.id)),
            )
        )
    return Report(
        attacks=attacks,
        lookalikes=lookalikes,
        alerts=len(matches),
        false_positives=sum(false_by_rule.values()),
        false_positives_by_rule=dict(sorted(false_by_rule.items())),
        side_effects_by_rule=dict(sorted(side_by_rule.items())),
        actor_days=actor_days,
        unexplained=sorted(unexplained, key=lambda a: a.window_start)[:unexplained_limit],
    )
