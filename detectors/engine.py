"""Runs the enabled detectors for one event and turns their findings into alerts.

The engine owns what detectors must not: per-tenant settings, enablement, the stable alert
id, and repeat suppression (by event time, so a replay suppresses exactly as the first run
did). For detectors with ``incidents`` it folds findings that continue one another into one
incident: one alert id, re-sent only as the incident grows (``detectors/base.py``). It is
pure like the detectors: the Faust agents in ``stream_jobs/detect.py`` give it an event and
the key's state, and publish what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from auditstream.detectors.base import Detector, Finding, Scope
from auditstream.detectors.config import DetectionConfig
from auditstream.schemas.alert import (
    MAX_EVIDENCE,
    Alert,
    Severity,
    incident_alert_id,
    stable_alert_id,
)
from auditstream.schemas.event import AuditEvent

SUPPRESSED = "_suppressed_until"
INCIDENTS = "_incidents"
_RANK = {s: i for i, s in enumerate(Severity)}
log = logging.getLogger(__name__)


def subject_of(event: AuditEvent, scope: Scope) -> str | None:
    if scope is Scope.ACTOR:
        return event.actor.id
    return event.ip


class DetectionEngine:
    def __init__(
        self,
        detectors: Sequence[Detector[Any]],
        config: DetectionConfig,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._now = now
        self.detectors = list(detectors)
        self._by_scope = {scope: [d for d in detectors if d.scope is scope] for scope in Scope}

    def has(self, scope: Scope) -> bool:
        return bool(self._by_scope[scope])

    def wants(self, event: AuditEvent, scope: Scope) -> bool:
        return any(d.wants(event) for d in self._by_scope[scope])

    def process(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        scope: Scope,
        tenant_state: dict[str, Any] | None = None,
    ) -> list[Alert]:
        """Alerts for ``event``.

        ``state`` is this key's state (all detectors) and ``tenant_state`` the tenant's as this
        partition sees it; both are updated in place for the caller to persist.
        """
        tenant_state = {} if tenant_state is None else tenant_state
        subject = subject_of(event, scope)
        if subject is None:
            return []
        alerts = []
        for detector in self._by_scope[scope]:
            settings = self._config.settings(event.tenant_id, detector.name)
            if not settings.enabled or not detector.wants(event):
                continue
            own = state.setdefault(detector.name, {})
            shared = tenant_state.setdefault(detector.name, {})
            try:
                findings = detector.observe(event, own, settings, shared)
            except Exception:  # one broken detector must not silence the others
                log.exception("detector %s failed on event %s", detector.name, event.event_id)
                continue
            for finding in findings:
                if detector.incidents:
                    incident = self._incident(
                        state, finding.rule or detector.name, finding, settings.suppress_minutes
                    )
                    if incident is not None:
                        alerts.append(
                            self._alert(detector, finding, event, subject, scope, incident)
                        )
                    continue
                alert = self._alert(detector, finding, event, subject, scope)
                if self._suppress(state, alert.rule, event, settings.suppress_minutes):
                    continue
                alerts.append(alert)
        return alerts

    def _incident(
        self, state: dict[str, Any], rule: str, finding: Finding, minutes: float
    ) -> dict[str, Any] | None:
        """The incident ``finding`` belongs to when its alert is to be (re-)sent, else None.

        Kept per rule: ``n`` (incidents so far) and the open one, ``[start, end]`` in event
        time, the magnitude and severity last sent and how many times it was sent.
        """
        book: dict[str, Any] = state.setdefault(INCIDENTS, {}).setdefault(rule, {"n": 0})
        quiet = int(minutes * 60_000)
        start, end = _ms(finding.window_start), _ms(finding.window_end)
        rank = _RANK[finding.severity]
        current: dict[str, Any] | None = book.get("open")
        if current is not None and end < current["start"] - quiet:
            return None  # a late finding of an incident already closed: reported then
        if current is None or start > current["end"] + quiet:
            book["n"] += 1
            current = book["open"] = {
                "seq": book["n"],
                "start": start,
                "end": end,
                "sent": finding.magnitude,
                "sev": rank,
                "rev": 0,
            }
            return current
        current["start"] = min(current["start"], start)
        current["end"] = max(current["end"], end)
        if finding.magnitude < 2 * current["sent"] and rank <= current["sev"]:
            return None
        current["sent"] = max(current["sent"], finding.magnitude)
        current["sev"] = max(current["sev"], rank)
        current["rev"] += 1
        return current

    def _suppress(
        self, state: dict[str, Any], rule: str, event: AuditEvent, minutes: float
    ) -> bool:
        until: dict[str, int] = state.setdefault(SUPPRESSED, {})
        now_ms = int(event.occurred_at.timestamp() * 1000)
        if until.get(rule, 0) > now_ms:
            return True
        # max(): an out-of-order older event must not shorten a suppression already running.
        end = now_ms + int(timedelta(minutes=minutes).total_seconds() * 1000)
        until[rule] = max(until.get(rule, 0), end)
        return False

    def _alert(
        self,
        detector: Detector[Any],
        finding: Finding,
        event: AuditEvent,
        subject: str,
        scope: Scope,
        incident: dict[str, Any] | None = None,
    ) -> Alert:
        rule = finding.rule or detector.name
        technique, technique_name = finding.mitre or detector.mitre
        context = dict(finding.extra)
        window = (finding.window_start, finding.window_end)
        seen = (finding.first_seen or window[0], finding.last_seen or window[1])
        if incident is None:
            alert_id = stable_alert_id(rule, event.tenant_id, subject, finding.window_start)
        else:
            alert_id = incident_alert_id(rule, event.tenant_id, subject, incident["seq"])
            window = seen = (_at(incident["start"]), _at(incident["end"]))
            context["incident"] = {"number": incident["seq"], "revision": incident["rev"]}
        return Alert(
            alert_id=alert_id,
            rule=rule,
            severity=finding.severity,
            tenant_id=event.tenant_id,
            actor_id=event.actor.id if scope is Scope.ACTOR else None,
            subject=subject,
            title=finding.title,
            explanation=finding.explanation,
            observations=list(finding.observations),
            window_start=window[0],
            window_end=window[1],
            first_seen=seen[0],
            last_seen=seen[1],
            evidence_event_ids=list(dict.fromkeys(finding.evidence))[-MAX_EVIDENCE:],
            mitre_technique=technique,
            mitre_name=technique_name,
            context=context,
            detected_at=self._now(),
        )


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
