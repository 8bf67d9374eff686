"""Brute force (actor scope) and password spraying (IP scope), directly and through the engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.detectors import config
from auditstream.detectors.base import Detector, DetectorSettings, Finding, Scope
from auditstream.detectors.brute_force import (
    BruteForce,
    BruteForceSettings,
    PasswordSpraying,
    SprayingSettings,
)
from auditstream.detectors.config import DetectorConfigError
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.registry import default_detectors
from auditstream.schemas.alert import Alert, Severity
from auditstream.schemas.event import AuditEvent

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
IP = "198.51.100.7"


def event(
    minutes: float,
    actor: str = "usr_alice",
    action: str = "sign_in",
    outcome: str = "success",
    ip: str | None = IP,
    tenant: str = "acme",
) -> AuditEvent:
    return AuditEvent(
        occurred_at=T0 + timedelta(minutes=minutes),
        tenant_id=tenant,
        actor={"id": actor},
        action=action,
        resource={"type": "session", "id": "sess"},
        outcome=outcome,
        ip=ip,
    )


def fail(minutes: float, actor: str = "usr_alice", **kw: Any) -> AuditEvent:
    return event(minutes, actor, action="sign_in_failed", outcome="failure", **kw)


def ok(minutes: float, actor: str = "usr_alice", **kw: Any) -> AuditEvent:
    return event(minutes, actor, **kw)


def run(
    detector: Detector[Any], events: Sequence[AuditEvent], settings: DetectorSettings
) -> tuple[list[list[Finding]], dict[str, Any]]:
    """Findings per event; the state goes through JSON between events, like the Faust table."""
    state: dict[str, Any] = {}
    tenant: dict[str, Any] = {}
    out = []
    for e in events:
        if not detector.wants(e):
            out.append([])
            continue
        out.append(detector.observe(e, state, settings, tenant))
        state = json.loads(json.dumps(state))
        tenant = json.loads(json.dumps(tenant))
    return out, state


def flat(per_event: list[list[Finding]]) -> list[Finding]:
    return [f for fs in per_event for f in fs]


# --- brute force -------------------------------------------------------------------------

BF = BruteForce()
BF_DEFAULT = BruteForceSettings()


def test_five_failures_then_success_alerts_with_the_failures_as_evidence() -> None:
    fails = [fail(m) for m in (0, 0.5, 1, 1.5, 2)]
    success = ok(3)
    per_event, state = run(BF, [*fails, success], BF_DEFAULT)
    assert flat(per_event[:-1]) == []
    [finding] = per_event[-1]
    assert finding.severity is Severity.HIGH
    assert list(finding.evidence) == [e.event_id for e in [*fails, success]]
    assert finding.window_start == fails[0].occurred_at
    assert finding.window_end == success.occurred_at
    assert finding.observations[0].observed == 5
    assert finding.observations[0].baseline == 5
    assert finding.observations[1].observed == 60  # seconds from last failure to success
    assert "5 failed sign-ins within 2.0 minutes" in finding.explanation
    assert IP in finding.explanation
    assert state == {}  # the success cleared the streak


def test_one_failure_short_of_threshold_is_quiet() -> None:
    per_event, _ = run(BF, [*(fail(m) for m in range(4)), ok(5)], BF_DEFAULT)
    assert flat(per_event) == []


def test_forgotten_password_three_failures_then_success_is_quiet() -> None:
    per_event, _ = run(BF, [fail(0), fail(0.3), fail(1), ok(1.5)], BF_DEFAULT)
    assert flat(per_event) == []


def test_failures_without_success_are_quiet() -> None:
    per_event, state = run(BF, [fail(m / 2) for m in range(20)], BF_DEFAULT)
    assert flat(per_event) == []
    assert len(state["f"]) == 20


def test_failure_outcomes_of_sign_in_count_as_failures() -> None:
    events = [
        event(0, outcome="failure"),
        event(1, outcome="denied"),
        event(2, outcome="failure"),
        event(3, action="sign_in_failed", outcome="denied"),
        fail(4),
        ok(5),
    ]
    per_event, _ = run(BF, events, BF_DEFAULT)
    assert len(flat(per_event)) == 1


def test_failures_spread_wider_than_the_window_are_quiet() -> None:
    # Five failures, but never five within ten minutes of each other.
    per_event, _ = run(BF, [*(fail(m) for m in (0, 3, 6, 9, 12)), ok(13)], BF_DEFAULT)
    assert flat(per_event) == []
    # The same five squeezed into the window do alert.
    per_event, _ = run(BF, [*(fail(m) for m in (0, 2, 4, 6, 8)), ok(13)], BF_DEFAULT)
    assert len(flat(per_event)) == 1


def test_success_long_after_the_failures_is_quiet() -> None:
    per_event, _ = run(BF, [*(fail(m) for m in range(5)), ok(4 + 11)], BF_DEFAULT)
    assert flat(per_event) == []
    per_event, _ = run(BF, [*(fail(m) for m in range(5)), ok(4 + 9)], BF_DEFAULT)
    assert len(flat(per_event)) == 1


def test_a_success_resets_the_streak() -> None:
    events = [*(fail(m) for m in range(3)), ok(3), *(fail(m) for m in (4, 5, 6)), ok(7)]
    per_event, _ = run(BF, events, BF_DEFAULT)
    assert flat(per_event) == []


def test_out_of_order_failures_are_counted_in_event_time() -> None:
    events = [fail(4), fail(1), fail(3), fail(0), fail(2), ok(5)]
    per_event, _ = run(BF, events, BF_DEFAULT)
    [finding] = flat(per_event)
    assert finding.window_start == T0
    assert list(finding.evidence)[:5] == [e.event_id for e in sorted(events[:5], key=_at)]


def _at(e: AuditEvent) -> datetime:
    return e.occurred_at


def test_brute_force_state_is_bounded() -> None:
    _, state = run(BF, [fail(m / 100) for m in range(300)], BF_DEFAULT)
    assert len(state["f"]) == 50
    # Failures older than window + success time are dropped.
    _, state = run(BF, [*(fail(m) for m in range(10)), fail(60)], BF_DEFAULT)
    assert len(state["f"]) == 1


def test_brute_force_settings_validate() -> None:
    with pytest.raises(DetectorConfigError, match="failures"):
        config.build({"defaults": {"brute_force": {"failures": 1}}}, [BF])
    with pytest.raises(DetectorConfigError, match="failure: Extra inputs"):
        config.build({"defaults": {"brute_force": {"failure": 3}}}, [BF])


# --- password spraying -------------------------------------------------------------------

SPRAY = PasswordSpraying()
SPRAY_DEFAULT = SprayingSettings()


def test_spraying_ten_actors_from_one_ip_alerts() -> None:
    events = [fail(m * 2, f"usr_{m}") for m in range(10)]
    per_event, _state = run(SPRAY, events, SPRAY_DEFAULT)
    assert flat(per_event[:-1]) == []
    [finding] = per_event[-1]
    assert finding.severity is Severity.HIGH
    assert set(finding.evidence) == {e.event_id for e in events}
    assert finding.window_start == T0
    assert finding.observations[0].observed == 10
    assert finding.observations[0].baseline == 10
    assert IP in finding.title
    assert "10 distinct accounts" in finding.explanation
    assert "within 18.0 minutes" in finding.explanation  # the evidence's own span
    assert finding.window_end == T0 + timedelta(minutes=18)
    assert finding.magnitude == 10


def test_spraying_one_actor_short_is_quiet() -> None:
    per_event, state = run(SPRAY, [fail(m, f"usr_{m}") for m in range(9)], SPRAY_DEFAULT)
    assert flat(per_event) == []
    assert len(state["r"]["a"]) == 9


def test_one_actor_failing_many_times_is_not_spraying() -> None:
    per_event, state = run(SPRAY, [fail(m / 4) for m in range(100)], SPRAY_DEFAULT)
    assert flat(per_event) == []
    assert state["r"]["a"]["usr_alice"][0] == 100


def test_spraying_slower_than_the_window_is_quiet() -> None:
    per_event, _ = run(SPRAY, [fail(m * 4, f"usr_{m}") for m in range(10)], SPRAY_DEFAULT)
    assert flat(per_event) == []


def test_spraying_ignores_successes_and_events_without_ip() -> None:
    assert not SPRAY.wants(ok(0))
    assert not SPRAY.wants(fail(0, ip=None))
    assert SPRAY.wants(event(0, outcome="denied"))


def test_spraying_from_an_allowed_network_is_quiet() -> None:
    settings = SprayingSettings(allowed_networks=["198.51.100.0/24"])
    per_event, _ = run(SPRAY, [fail(m, f"usr_{m}") for m in range(12)], settings)
    assert flat(per_event) == []
    with pytest.raises(ValueError, match="not a network"):
        SprayingSettings(allowed_networks=["office"])


# --- through the engine ------------------------------------------------------------------


class Harness:
    """The engine with per-key state kept as JSON, as the Faust agents keep it."""

    def __init__(self, document: dict[str, Any]) -> None:
        detectors: list[Detector[Any]] = [BruteForce(), PasswordSpraying()]
        self.engine = DetectionEngine(detectors, config.build(document, detectors), now=lambda: T0)
        self.state: dict[tuple[Scope, str, str], str] = {}

    def feed(self, events: Sequence[AuditEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        for e in events:
            for scope in Scope:
                subject = e.actor.id if scope is Scope.ACTOR else e.ip
                if subject is None or not self.engine.wants(e, scope):
                    continue
                key = (scope, e.tenant_id, subject)
                tkey = (scope, e.tenant_id, "#tenant")
                state = json.loads(self.state.get(key, "{}"))
                shared = json.loads(self.state.get(tkey, "{}"))
                alerts += self.engine.process(e, state, scope, shared)
                self.state[key], self.state[tkey] = json.dumps(state), json.dumps(shared)
        return alerts


def burst(start: float, actor: str = "usr_alice", n: int = 5, **kw: Any) -> list[AuditEvent]:
    return [*(fail(start + m / 2, actor, **kw) for m in range(n)), ok(start + n, actor, **kw)]


def test_engine_alerts_brute_force_and_suppresses_repeats() -> None:
    h = Harness({})
    [alert] = h.feed(burst(0))
    assert (alert.rule, alert.severity, alert.subject) == (
        "brute_force",
        Severity.HIGH,
        "usr_alice",
    )
    assert (alert.mitre_technique, alert.mitre_name) == (
        "T1110.001",
        "Brute Force: Password Guessing",
    )
    assert len(alert.evidence_event_ids) == 6
    assert h.feed(burst(20)) == []  # within the 60 suppression minutes
    [again] = h.feed(burst(90))
    assert again.alert_id != alert.alert_id


def test_engine_alert_ids_are_stable_on_replay() -> None:
    events = burst(0)
    assert [a.alert_id for a in Harness({}).feed(events)] == [
        a.alert_id for a in Harness({}).feed(events)
    ]


def test_engine_per_tenant_threshold() -> None:
    h = Harness({"tenants": {"strict": {"brute_force": {"failures": 3}}}})
    assert h.feed(burst(0, n=3, tenant="acme")) == []
    [alert] = h.feed(burst(0, n=3, tenant="strict"))
    assert alert.tenant_id == "strict"
    assert alert.observations[0].baseline == 3


def test_engine_disabled_for_a_tenant() -> None:
    h = Harness({"tenants": {"acme": {"brute_force": {"enabled": False}}}})
    assert h.feed(burst(0)) == []
    assert len(h.feed(burst(0, tenant="other"))) == 1


def test_engine_spraying_is_keyed_by_ip() -> None:
    h = Harness({})
    alerts = h.feed([fail(m, f"usr_{m}") for m in range(10)])
    [alert] = alerts
    assert (alert.rule, alert.subject, alert.actor_id) == ("password_spraying", IP, None)
    assert alert.mitre_technique == "T1110.003"
    # Nine actors from each of two IPs: no single IP reaches ten.
    h = Harness({})
    events = [fail(m, f"usr_{m}", ip=ip) for ip in ("192.0.2.1", "192.0.2.2") for m in range(9)]
    assert h.feed(events) == []


def test_engine_spraying_per_tenant_threshold_and_suppression() -> None:
    h = Harness({"tenants": {"small": {"password_spraying": {"min_actors": 3}}}})
    assert h.feed([fail(m, f"usr_{m}", tenant="acme") for m in range(3)]) == []
    [alert] = h.feed([fail(m, f"usr_{m}", tenant="small") for m in range(3)])
    assert alert.tenant_id == "small"
    # The spray goes on: one more account is the same incident, not re-sent...
    assert h.feed([fail(4, "usr_x0", tenant="small")]) == []
    # ...until the accounts have doubled: the same alert, updated.
    [update] = h.feed([fail(5 + m, f"usr_x{m + 1}", tenant="small") for m in range(3)])
    assert update.alert_id == alert.alert_id
    assert update.observations[0].observed == 6
    assert update.window_start == alert.window_start
    assert update.context["incident"] == {"number": 1, "revision": 1}


def test_registry_runs_both_detectors_with_valid_defaults() -> None:
    detectors = default_detectors()
    names = {d.name: d for d in detectors}
    assert names["brute_force"].scope is Scope.ACTOR
    assert names["password_spraying"].scope is Scope.IP
    built = config.build({}, detectors)
    assert isinstance(built.settings("acme", "brute_force"), BruteForceSettings)
