"""A scripted scenario through the whole pipeline yields exactly the expected alerts, once each,
also across a worker crash in the middle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.producers import AuditProducer, ProducerConfig

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

# Wednesday 2026-11-18, 10:00 in Berlin (UTC+1)
T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)

CONFIG = """
[tenants.acme]
timezone = "Europe/Berlin"

[tenants.acme.mass_deletion]
allowed_actors = ["usr_bob_admin"]
allowed_hours = "08:00-18:00"
"""


def _event(actor: str, action: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "actor": {"id": actor},
        "action": action,
        "resource": extra.pop("resource", {"type": "task", "id": f"{actor}-{at.timestamp()}"}),
        "occurred_at": at,
        **extra,
    }


def _burst(actor: str, action: str, count: int, start: datetime) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield _event(actor, action, start + timedelta(seconds=10 * i))


BERLIN = {"country": "DE", "city": "Berlin", "latitude": 52.52, "longitude": 13.40}
SYDNEY = {"country": "AU", "city": "Sydney", "latitude": -33.87, "longitude": 151.21}
OFFICE_IP = "203.0.113.10"


def _sign_in(actor: str, at: datetime, ok: bool = True, **extra: Any) -> dict[str, Any]:
    extra.setdefault("ip", OFFICE_IP)
    extra.setdefault("location", BERLIN)
    return _event(
        actor,
        "sign_in" if ok else "sign_in_failed",
        at,
        resource={"type": "session", "id": f"s-{actor}-{at.timestamp()}"},
        outcome="success" if ok else "failure",
        **extra,
    )


def _workday_mornings(actor: str, days: int) -> list[dict[str, Any]]:
    """Sign-ins at 08:30 in Berlin (07:30 UTC in winter) on the weekdays before T0."""
    out = []
    day = T0 - timedelta(days=days)
    while day < T0 - timedelta(days=1):
        if day.weekday() < 5:
            out.append(_sign_in(actor, day.replace(hour=7, minute=30)))
        day += timedelta(days=1)
    return out


def sign_ins_one() -> list[dict[str, Any]]:
    return [
        *_workday_mornings("usr_ivan", 40),  # a 9-to-5 profile to learn from
        *_workday_mornings("usr_judy", 8),  # a short history in Berlin
        *[_sign_in("usr_ken", T0 + timedelta(minutes=m), ok=False) for m in range(6)],
        _sign_in("usr_ken", T0 + timedelta(minutes=7)),  # brute force, then success
        *[_sign_in("usr_lena", T0 + timedelta(minutes=m), ok=False) for m in range(3)],
        _sign_in("usr_lena", T0 + timedelta(minutes=4)),  # forgotten password: quiet
    ]


def sign_ins_two() -> list[dict[str, Any]]:
    sprayed = [
        _sign_in(f"usr_sp{i:02d}", T0 + timedelta(minutes=i), ok=False, ip="198.51.100.7")
        for i in range(12)
    ]
    near_miss = [
        _sign_in(f"usr_nm{i:02d}", T0 + timedelta(minutes=i), ok=False, ip="198.51.100.8")
        for i in range(9)
    ]
    return [
        _sign_in("usr_ivan", T0 + timedelta(days=1, hours=-7)),  # 03:00 in Berlin, Thursday
        _sign_in("usr_judy", T0),  # Berlin 10:00 ...
        _sign_in("usr_judy", T0 + timedelta(minutes=30), location=SYDNEY),  # ... Sydney 10:30
        *sprayed,  # one IP, twelve accounts: spraying
        *near_miss,  # nine accounts: one short
    ]


def phase_one() -> list[dict[str, Any]]:
    events = [
        *sign_ins_one(),
        *_burst("usr_mallory", "delete", 30, T0),  # mass deletion
        *_burst("usr_carol", "delete", 24, T0),  # one short of the threshold: quiet
        *_burst("usr_bob_admin", "delete", 40, T0),  # allowed admin, in working hours: quiet
        *_burst("usr_frank", "update", 35, T0),  # history for a later first settings change
        *_burst("usr_grace", "update", 5, T0),
        _event(
            "usr_eve",
            "role_change",
            T0 + timedelta(minutes=20),
            resource={"type": "membership", "id": "mem_9", "name": "usr_eve2"},
            changes=[{"field": "role", "old": "member", "new": "admin"}],
        ),  # privilege escalation
        _event(
            "usr_dave",
            "role_change",
            T0 + timedelta(minutes=20),
            resource={"type": "membership", "id": "mem_8"},
            changes=[{"field": "role", "old": "member", "new": "editor"}],
        ),  # not a privileged role: quiet
    ]
    return events


def phase_two() -> list[dict[str, Any]]:
    evening = T0 + timedelta(hours=10)  # 20:00 in Berlin: outside bob's allowed hours
    return [
        *sign_ins_two(),
        *_burst("usr_bob_admin", "delete", 30, evening),  # mass deletion after hours
        *_burst("usr_inviter", "invite", 25, T0 + timedelta(hours=1)),  # invitation surge
        _event(
            "usr_frank",
            "settings_change",
            T0 + timedelta(hours=2),
            resource={"type": "settings", "id": "sso"},
            changes=[{"field": "sso_enforced", "old": True, "new": False}],
        ),  # first settings change after a history
        _event(
            "usr_grace",
            "settings_change",
            T0 + timedelta(hours=2),
            resource={"type": "settings", "id": "x"},
        ),  # too little history: quiet
    ]


FIRST = {
    ("mass_deletion", "usr_mallory"),
    ("privilege_escalation", "usr_eve"),
    ("brute_force", "usr_ken"),
}
EXPECTED = FIRST | {
    ("off_hours_sign_in", "usr_ivan"),
    ("impossible_travel", "usr_judy"),
    ("new_location", "usr_judy"),
    ("password_spraying", "198.51.100.7"),
    ("mass_deletion", "usr_bob_admin"),
    ("invitation_surge", "usr_inviter"),
    ("first_settings_change", "usr_frank"),
}


def _emit(env: Env, events: list[dict[str, Any]]) -> None:
    config = ProducerConfig(bootstrap_servers=env.bootstrap, topic=env.settings.topics.raw)
    with AuditProducer(config) as audit:
        for fields in events:
            audit.emit(**fields)
        assert audit.flush(10) == 0


def _alerts(env: Env, expected: int) -> list[dict[str, Any]]:
    return [
        orjson.loads(m.value() or b"")
        for m in env.read_topic(env.settings.topics.alerts, expected=expected, timeout=60)
    ]


def test_scenario_yields_expected_alerts_once_across_a_worker_crash(
    env: Env, tmp_path: Path
) -> None:
    config = tmp_path / "detectors.toml"
    config.write_text(CONFIG)
    env.vars["AUDITSTREAM_DETECTORS_CONFIG"] = str(config)
    # The scenario's timeline is pinned (T0, a Wednesday in Berlin's winter time): a
    # retention that keeps it, or the normalizer would dead-letter it a year from now.
    env.vars["AUDITSTREAM_RETENTION_DAYS"] = "3650"
    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        _emit(env, phase_one())
        first = _alerts(env, expected=len(FIRST))
        assert {(a["rule"], a["subject"]) for a in first} == FIRST
        time.sleep(3)  # past the commit interval (1 s): the crash comes after a commit
        pipeline.stop("worker", kill=True)
        pipeline.start("worker")
        _emit(env, phase_two())
        alerts = _alerts(env, expected=len(EXPECTED))
        wait_for(
            lambda: env.scalar("SELECT count() FROM security_alerts") >= len(EXPECTED),
            what="alerts stored in ClickHouse",
            timeout=20,
        )
        stored = env.sql("SELECT rule, subject, toString(alert_id) FROM security_alerts")
        pipeline.check()
    finally:
        pipeline.stop_all()

    assert {(a["rule"], a["subject"]) for a in alerts} == EXPECTED
    assert len(alerts) == len(EXPECTED), "each alert once, none re-sent after the restart"
    assert len({a["alert_id"] for a in alerts}) == len(EXPECTED)
    assert {(r, s) for r, s, _ in stored} == EXPECTED
    assert len(stored) == len(EXPECTED)

    by_rule = {(a["rule"], a["subject"]): a for a in alerts}
    mallory = by_rule[("mass_deletion", "usr_mallory")]
    assert mallory["severity"] == "high"
    assert mallory["mitre_technique"] == "T1485"
    assert len(mallory["evidence_event_ids"]) == 25
    assert mallory["observations"][0]["observed"] == 25
    eve = by_rule[("privilege_escalation", "usr_eve")]
    assert "admin" in eve["explanation"]
