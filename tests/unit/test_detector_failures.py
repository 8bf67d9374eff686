"""Failed sign-ins without a success: bursts per account and per source, low and slow, one
incident per attack, and the same alerts in any arrival order within the lateness."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.detectors import config
from auditstream.detectors.base import Detector, Scope
from auditstream.detectors.brute_force import BruteForce, PasswordSpraying
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.failures import (
    AccountSignInFailures,
    SlowAccountSignInFailures,
    SlowSourceSignInFailures,
    SourceSignInFailures,
)
from auditstream.detectors.registry import default_detectors
from auditstream.schemas.alert import Alert, Severity
from auditstream.schemas.event import AuditEvent

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
IP = "203.0.113.50"
RANK = list(Severity)


def fail(seconds: float, actor: str = "root", ip: str | None = IP, tenant: str = "acme") -> Any:
    return AuditEvent(
        occurred_at=T0 + timedelta(seconds=seconds),
        tenant_id=tenant,
        actor={"id": actor},
        action="sign_in_failed",
        resource={"type": "host", "id": "bastion"},
        outcome="failure",
        ip=ip,
    )


def ok(seconds: float, actor: str = "root", ip: str | None = IP) -> AuditEvent:
    return AuditEvent(
        occurred_at=T0 + timedelta(seconds=seconds),
        tenant_id="acme",
        actor={"id": actor},
        action="sign_in",
        resource={"type": "host", "id": "bastion"},
        ip=ip,
    )


class Harness:
    """The engine with per-key state through JSON, as the Faust tables keep it."""

    def __init__(self, detectors: Sequence[Detector[Any]], document: dict[str, Any] | None = None):
        self.engine = DetectionEngine(
            detectors, config.build(document or {}, detectors), now=lambda: T0
        )
        self.state: dict[tuple[Scope, str, str], str] = {}

    def feed(self, events: Sequence[AuditEvent]) -> list[Alert]:
        out: list[Alert] = []
        for e in events:
            for scope in Scope:
                subject = e.actor.id if scope is Scope.ACTOR else e.ip
                if subject is None or not self.engine.wants(e, scope):
                    continue
                key = (scope, e.tenant_id, subject)
                state = json.loads(self.state.get(key, "{}"))
                out += self.engine.process(e, state, scope, {})
                self.state[key] = json.dumps(state)
        return out


def failures_only() -> list[Detector[Any]]:
    return [
        AccountSignInFailures(),
        SourceSignInFailures(),
        SlowAccountSignInFailures(),
        SlowSourceSignInFailures(),
    ]


# --- bursts ------------------------------------------------------------------------------


def test_sshd_26_failed_root_logins_in_59_seconds_is_one_incident() -> None:
    events = [fail(i * 59 / 25) for i in range(26)]
    alerts = Harness(failures_only()).feed(events)
    rules = {a.rule for a in alerts}
    assert rules == {"account_sign_in_failures", "source_sign_in_failures"}
    account = [a for a in alerts if a.rule == "account_sign_in_failures"]
    # First at the 10th failure, re-sent (same id) at 20: not 17 alerts.
    assert [a.observations[0].observed for a in account] == [10, 20]
    assert len({a.alert_id for a in account}) == 1
    assert account[-1].window_start == T0
    assert account[-1].severity is Severity.MEDIUM
    assert "no success" in account[-1].title
    assert "from 1 source(s): 203.0.113.50" in account[-1].explanation


def test_severities_stay_below_brute_force_then_success() -> None:
    high = RANK.index(Severity.HIGH)
    for detector in failures_only():
        assert RANK.index(detector.severity) < high  # type: ignore[attr-defined]
    assert RANK.index(SlowAccountSignInFailures.severity) < RANK.index(Severity.MEDIUM)


def test_nine_failures_and_a_forgotten_password_are_quiet() -> None:
    h = Harness(failures_only())
    assert h.feed([fail(i * 30) for i in range(9)]) == []
    h = Harness(failures_only())
    assert (
        h.feed([fail(0, "usr_bob"), fail(20, "usr_bob"), fail(50, "usr_bob"), ok(90, "usr_bob")])
        == []
    )


def test_failures_spread_wider_than_the_window_are_quiet() -> None:
    # 12 failures, one every 2 minutes: never 10 within 10 minutes.
    assert Harness([AccountSignInFailures()]).feed([fail(i * 120) for i in range(12)]) == []


def test_source_guessing_user_names_alerts_whatever_the_accounts() -> None:
    names = ["admin", "oracle", "test", "ubuntu", "git", "postgres"]
    events = [fail(i * 10, names[i % len(names)]) for i in range(18)]
    alerts = Harness([SourceSignInFailures(), AccountSignInFailures()]).feed(events)
    assert [a.rule for a in alerts] == ["source_sign_in_failures"]
    [alert] = alerts
    assert alert.subject == IP
    assert alert.actor_id is None
    assert alert.observations[1].observed == 6  # distinct accounts
    assert "against 6 account(s)" in alert.explanation
    assert Harness([SourceSignInFailures()]).feed(events[:14]) == []


def test_allowed_network_is_quiet() -> None:
    doc = {"defaults": {"source_sign_in_failures": {"allowed_networks": ["203.0.113.0/24"]}}}
    events = [fail(i, f"u{i}") for i in range(40)]
    assert Harness([SourceSignInFailures()], doc).feed(events) == []


def test_a_long_attack_is_one_alert_updated_logarithmically() -> None:
    # Three hours, one failure every two seconds: 5,400 failures.
    events = [fail(i * 2) for i in range(5400)]
    alerts = Harness([AccountSignInFailures()]).feed(events)
    assert len({a.alert_id for a in alerts}) == 1
    assert len(alerts) <= 11
    last = alerts[-1]
    assert last.window_start == T0
    assert last.observations[0].observed >= 2700
    assert last.context["incident"]["revision"] == len(alerts) - 1


def test_a_new_attack_after_a_quiet_hour_is_a_new_incident() -> None:
    h = Harness([AccountSignInFailures()])
    [first] = h.feed([fail(i) for i in range(10)])
    [second] = h.feed([fail(2 * 3600 + i) for i in range(10)])
    assert first.alert_id != second.alert_id
    assert second.context["incident"]["number"] == 2


def test_state_is_bounded() -> None:
    detector = SourceSignInFailures()
    state: dict[str, Any] = {}
    settings = detector.settings()
    for i in range(3000):
        detector.observe(fail(i, f"user{i}"), state, settings, {})  # type: ignore[arg-type]
    assert len(json.dumps(state)) < 12_000
    assert len(state["r"]["ev"]) == 50
    assert state["r"]["n"] == 3000


# --- low and slow -------------------------------------------------------------------------


def test_low_and_slow_against_one_account_over_a_day() -> None:
    # 24 failures, one every 30 minutes: never a burst, but 12 hours of guessing.
    events = [fail(i * 1800, "usr_cfo", ip=f"198.51.100.{i % 8 + 1}") for i in range(24)]
    alerts = Harness(failures_only()).feed(events)
    assert {a.rule for a in alerts} == {"slow_account_sign_in_failures"}
    assert alerts[0].severity is Severity.LOW
    assert alerts[0].observations[0].observed == 12


def test_low_and_slow_from_an_address_the_account_uses_is_quiet() -> None:
    # A phone with a stale password, retrying from home all day, where the user signs in.
    home = "192.0.2.44"
    events = [ok(0, "usr_cfo", ip=home), *(fail(i * 1800, "usr_cfo", ip=home) for i in range(30))]
    assert Harness([SlowAccountSignInFailures()]).feed(events) == []


def test_failures_taken_back_by_a_later_success_from_the_same_address() -> None:
    # A user on a new network fails all morning, then gets it right there: not guessing.
    new = "198.51.100.200"
    events = [fail(i * 1800, "usr_cfo", ip=new) for i in range(11)]
    h = Harness([SlowAccountSignInFailures()])
    assert h.feed([*events, ok(11 * 1800, "usr_cfo", ip=new)]) == []
    assert h.feed([fail(12 * 1800 + i, "usr_cfo", ip="203.0.113.9") for i in range(3)]) == []
    # Without that success, the same failures and three more alert.
    h = Harness([SlowAccountSignInFailures()])
    [alert] = h.feed(
        [*events, *(fail(12 * 1800 + i, "usr_cfo", ip="203.0.113.9") for i in range(3))]
    )
    assert alert.observations[0].observed == 12


def test_low_and_slow_needs_several_hours() -> None:
    # 25 failures in 20 minutes is a burst (the other rules), not low and slow.
    events = [fail(i * 48, "usr_cfo", ip="198.51.100.9") for i in range(25)]
    assert Harness([SlowAccountSignInFailures()]).feed(events) == []


def test_low_and_slow_from_one_source() -> None:
    events = [fail(i * 900, f"user{i % 40}") for i in range(40)]  # ten hours
    alerts = Harness([SlowSourceSignInFailures(), SourceSignInFailures()]).feed(events)
    assert [a.rule for a in alerts] == ["slow_source_sign_in_failures"]


# --- order independence ----------------------------------------------------------------------


def shuffled(events: list[AuditEvent], lateness_s: float, seed: int) -> list[AuditEvent]:
    """Arrival order: each event late by up to ``lateness_s``."""
    rng = random.Random(seed)
    delayed = [
        (e.occurred_at + timedelta(seconds=rng.uniform(0, lateness_s)), i, e)
        for i, e in enumerate(events)
    ]
    return [e for _, _, e in sorted(delayed)]


def spray_events() -> list[AuditEvent]:
    rng = random.Random(3)
    return sorted(
        (fail(rng.uniform(0, 600), f"usr_{i:02d}", ip="192.0.2.77") for i in range(24)),
        key=lambda e: e.occurred_at,
    )


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    ("detectors", "events"),
    [
        ([PasswordSpraying()], spray_events),
        (
            [AccountSignInFailures(), SourceSignInFailures()],
            lambda: [fail(i * 2.3) for i in range(45)],
        ),
        ([SlowSourceSignInFailures()], lambda: [fail(i * 900, f"u{i}") for i in range(40)]),
    ],
)
def test_ids_windows_and_explanations_do_not_depend_on_arrival_order(
    seed: int, detectors: list[Detector[Any]], events: Any
) -> None:
    ordered = events()
    in_order, late = Harness(detectors), Harness(detectors)
    a = in_order.feed(ordered)
    b = late.feed(shuffled(ordered, 120, seed))
    assert a
    assert b
    assert {x.alert_id for x in a} == {x.alert_id for x in b}
    # Once every event has arrived, what the alert says is the same: one more failure shows it.
    tail = [
        fail(
            ordered[-1].occurred_at.timestamp() - T0.timestamp() + 1,
            ordered[-1].actor.id,
            ordered[-1].ip,
        )
    ]
    final_a = _last(in_order, tail, a[-1].rule)
    final_b = _last(late, tail, a[-1].rule)
    assert (final_a.window_start, final_a.window_end) == (final_b.window_start, final_b.window_end)
    assert final_a.explanation == final_b.explanation
    assert final_a.evidence_event_ids == final_b.evidence_event_ids


def _last(h: Harness, tail: list[AuditEvent], rule: str) -> Alert:
    """The finding the next event would make, sent or not (the engine is bypassed for it)."""
    [e] = tail
    for detector in h.engine.detectors:
        if detector.name != rule:
            continue
        scope = detector.scope
        subject = e.actor.id if scope is Scope.ACTOR else e.ip
        state = json.loads(h.state[(scope, e.tenant_id, str(subject))])
        settings = detector.settings()
        [finding] = detector.observe(e, state[rule], settings, {})
        return h.engine._alert(detector, finding, e, str(subject), scope)
    raise AssertionError(rule)


def test_password_spraying_explanation_spans_its_evidence() -> None:
    events = spray_events()
    [alert] = Harness([PasswordSpraying()]).feed(events[:12])
    span = (alert.window_end - alert.window_start).total_seconds() / 60
    assert f"within {span:.1f} minutes" in alert.explanation


def test_registry_and_defaults() -> None:
    names = {d.name: d for d in default_detectors()}
    for rule in (
        "account_sign_in_failures",
        "source_sign_in_failures",
        "slow_account_sign_in_failures",
        "slow_source_sign_in_failures",
    ):
        assert rule in names
    assert names["source_sign_in_failures"].scope is Scope.IP
    built = config.build({}, default_detectors())
    assert built.settings("acme", "source_sign_in_failures").failures == 15  # type: ignore[attr-defined]
    assert [
        a.rule
        for a in Harness([BruteForce(), AccountSignInFailures()]).feed(
            [*(fail(i * 20, "usr_x") for i in range(10)), ok(220, "usr_x")]
        )
    ] == ["account_sign_in_failures", "brute_force"]


def test_slow_account_state_is_bounded_under_a_distributed_attack() -> None:
    detector = SlowAccountSignInFailures()
    state: dict[str, Any] = {}
    settings = detector.settings()
    for i in range(2000):
        ip = f"2001:db8:{i // 250:x}:{i % 250:x}::1"
        detector.observe(fail(i * 40, "usr_cfo", ip=ip), state, settings, {})  # type: ignore[arg-type]
    assert len(state["b"]) <= 51
    assert len(json.dumps(state)) < 20_000
