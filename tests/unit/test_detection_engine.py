"""The engine: enablement, per-tenant settings, suppression, isolation of a failing detector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.detectors import config
from auditstream.detectors.base import Detector, DetectorSettings, Finding
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.mass_action import MassDeletion
from auditstream.detectors.privilege import FirstSettingsChange, PrivilegeEscalation
from auditstream.schemas.alert import Severity
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs.detect import state_key, tenant_key

T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def event(actor: str = "u1", action: str = "delete", at: datetime = T0, **extra: Any) -> AuditEvent:
    return AuditEvent(
        tenant_id=extra.pop("tenant_id", "acme"),
        actor={"id": actor},
        action=action,
        resource=extra.pop("resource", {"type": "task", "id": "t1"}),
        occurred_at=at,
        **extra,
    )


class Always(Detector[DetectorSettings]):
    """Fires on every event."""

    name = "always"
    mitre = ("T0000", "Test")

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: DetectorSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        state["n"] = state.get("n", 0) + 1
        return [
            Finding(Severity.LOW, "t", "e", event.occurred_at, event.occurred_at, [event.event_id])
        ]


class Broken(Detector[DetectorSettings]):
    name = "broken"
    mitre = ("T0000", "Test")

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: DetectorSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        raise RuntimeError("bug")


def engine(*detectors: Detector[Any], document: dict[str, Any] | None = None) -> DetectionEngine:
    return DetectionEngine(list(detectors), config.build(document or {}, list(detectors)))


def run(eng: DetectionEngine, events: list[AuditEvent]) -> list[Any]:
    state: dict[str, Any] = {}
    tenant: dict[str, Any] = {}
    out = []
    for e in events:
        out += eng.process(e, state, eng.detectors[0].scope, tenant)
        state = json.loads(json.dumps(state))  # what the Faust table does between events
        tenant = json.loads(json.dumps(tenant))
    return out


def test_repeats_are_suppressed_for_the_configured_time() -> None:
    eng = engine(Always(), document={"defaults": {"suppress_minutes": 30}})
    times = [T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=29), T0 + timedelta(minutes=31)]
    alerts = run(eng, [event(at=t) for t in times])
    assert [a.window_start for a in alerts] == [T0, T0 + timedelta(minutes=31)]


def test_an_older_event_does_not_shorten_a_running_suppression() -> None:
    eng = engine(Always(), document={"defaults": {"suppress_minutes": 30}})
    late = T0 + timedelta(minutes=40)
    # fires at 40, then an out-of-order event from 05 is suppressed; 60 is still within 40+30
    alerts = run(
        eng,
        [event(at=late), event(at=T0 + timedelta(minutes=5)), event(at=T0 + timedelta(minutes=60))],
    )
    assert [a.window_start for a in alerts] == [late]


def test_alert_ids_are_stable_across_a_replay() -> None:
    first = run(engine(Always()), [event()])
    again = run(engine(Always()), [event()])
    assert first[0].alert_id == again[0].alert_id


def test_a_failing_detector_does_not_silence_the_others() -> None:
    eng = engine(Broken(), Always())
    assert [a.rule for a in run(eng, [event()])] == ["always"]


def test_disabled_for_one_tenant_only() -> None:
    eng = engine(Always(), document={"tenants": {"quiet": {"always": {"enabled": False}}}})
    assert run(eng, [event(tenant_id="quiet")]) == []
    assert len(run(eng, [event(tenant_id="acme")])) == 1


def test_mass_deletion_threshold_and_near_miss() -> None:
    eng = engine(MassDeletion(), document={"defaults": {"mass_deletion": {"threshold": 5}}})
    burst = [event(at=T0 + timedelta(seconds=i)) for i in range(4)]
    assert run(eng, burst) == []
    alerts = run(eng, [*burst, event(at=T0 + timedelta(seconds=5))])
    assert len(alerts) == 1
    assert alerts[0].observations[0].observed == 5
    assert len(alerts[0].evidence_event_ids) == 5


def test_mass_deletion_window_slides() -> None:
    eng = engine(
        MassDeletion(),
        document={"defaults": {"mass_deletion": {"threshold": 3, "window_minutes": 1}}},
    )
    spread = [event(at=T0 + timedelta(seconds=40 * i)) for i in range(6)]  # never 3 within 60 s
    assert run(eng, spread) == []


def test_allowed_admin_in_hours_is_quiet_but_not_after_hours() -> None:
    document = {
        "tenants": {
            "acme": {
                "timezone": "Europe/Berlin",
                "mass_deletion": {
                    "threshold": 3,
                    "allowed_actors": ["admin"],
                    "allowed_hours": "08:00-18:00",
                },
            }
        }
    }
    eng = engine(MassDeletion(), document=document)
    in_hours = [event("admin", at=T0 + timedelta(seconds=i)) for i in range(5)]  # 10:00 Berlin
    assert run(eng, in_hours) == []
    evening = T0 + timedelta(hours=10)  # 20:00 Berlin
    assert len(run(eng, [event("admin", at=evening + timedelta(seconds=i)) for i in range(3)])) == 1


def test_privilege_escalation_only_for_privileged_grants() -> None:
    eng = engine(PrivilegeEscalation())

    def change(old: Any, new: Any) -> AuditEvent:
        return event(action="role_change", changes=[{"field": "role", "old": old, "new": new}])

    assert len(run(eng, [change("member", "admin")])) == 1
    assert len(run(eng, [change("member", ["viewer", "Owner"])])) == 1
    assert run(eng, [change("member", "editor")]) == []
    assert run(eng, [change("admin", "admin")]) == []  # not a grant
    assert run(eng, [change("member", "badminton_team")]) == []  # words, not substrings


def test_first_settings_change_needs_history() -> None:
    eng = engine(
        FirstSettingsChange(), document={"defaults": {"first_settings_change": {"min_history": 3}}}
    )
    history = [event(action="update", at=T0 + timedelta(minutes=i)) for i in range(3)]
    settings = event(action="settings_change", at=T0 + timedelta(hours=1))
    assert run(eng, [history[0], settings]) == []
    assert len(run(eng, [*history, settings])) == 1
    second = event(action="settings_change", at=T0 + timedelta(hours=5))
    assert len(run(eng, [*history, settings, second])) == 1  # only the first one


@pytest.mark.parametrize(
    ("tenant", "subject"), [("acme", '#tenant", 0'), ('acme", "t', "x"), ("a", "b")]
)
def test_state_keys_cannot_be_forged(tenant: str, subject: str) -> None:
    assert state_key(tenant, subject) != tenant_key(tenant, 0)
    assert state_key(tenant, subject) != state_key(tenant + "x", subject)
    assert json.loads(state_key(tenant, subject)) == ["s", tenant, subject]
