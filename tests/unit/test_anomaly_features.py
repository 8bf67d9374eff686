"""Window features: hand-checked values, and the same features from SQL and from the stream.

The drift check runs the training SQL on a real embedded ClickHouse (chDB) in a child process
(chDB allows one store per process; pytest's own process never opens it) over the same events
the stream path folds, and compares every window's summary.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditstream.detectors.anomaly import features, windows
from auditstream.detectors.anomaly.features import (
    FEATURE_NAMES,
    MAX_DISTINCT_RESOURCES,
    WindowSummary,
    facts_from_event,
    feature_vector,
    is_off_hours,
    millis,
)
from auditstream.schemas.actions import Action
from auditstream.schemas.codec import encode
from auditstream.schemas.event import AuditEvent

T0 = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)  # a Friday; DST in Europe starts on the 29th


def ev(
    at: datetime,
    action: str = "update",
    actor: str = "u1",
    tenant: str = "acme",
    outcome: str = "success",
    resource: tuple[str, str] = ("task", "t1"),
    tz: str | None = None,
) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "occurred_at": at,
            "received_at": at + timedelta(seconds=1),
            "tenant_id": tenant,
            "actor": {"id": actor, "timezone": tz},
            "action": action,
            "outcome": outcome,
            "resource": {"type": resource[0], "id": resource[1]},
        }
    )


def stream_windows(events: Iterable[AuditEvent]) -> dict[tuple[str, str, int], Any]:
    """What the agent computes: fold in order, then close everything."""
    states: dict[tuple[str, str], dict[str, Any]] = {}
    closed: list[windows.ClosedWindow] = []
    rules = windows.WindowRules()
    for offset, e in enumerate(events):
        state = states.setdefault((e.tenant_id, e.actor.id), {})
        verdict, done = windows.observe(
            state, facts_from_event(e), e.tenant_id, e.actor.id, 0, offset, 2**62, rules
        )
        assert verdict is windows.Verdict.ACCEPTED
        closed.extend(done)
    for state in states.values():
        closed.extend(windows.close_due(state, 2**62))
    return {
        (w.tenant_id, w.actor_id, w.start_ms): (w.summary, w.first_ms, w.last_ms) for w in closed
    }


def test_every_action_is_in_exactly_one_class() -> None:
    classes = [a for acts in features.ACTION_CLASSES.values() for a in acts]
    assert sorted(classes) == sorted(Action)


def test_hand_made_window() -> None:
    events = [
        ev(T0 + timedelta(minutes=1), "access", resource=("doc", "d1")),
        ev(T0 + timedelta(minutes=2), "access", resource=("doc", "d1")),
        ev(T0 + timedelta(minutes=3), "export", resource=("doc", "d2")),
        ev(T0 + timedelta(minutes=4), "delete", resource=("task", "d2")),  # other type: distinct
        ev(T0 + timedelta(minutes=5), "login_failed", outcome="failure", resource=("session", "s")),
        ev(T0 + timedelta(minutes=6), "grant", outcome="denied", resource=("doc", "d1")),
        ev(T0 + timedelta(minutes=59, seconds=59), "update"),
        ev(T0 + timedelta(hours=1), "update"),  # the next window
    ]
    got = stream_windows(events)
    start = millis(T0)
    summary, first, last = got[("acme", "u1", start)]
    assert summary == WindowSummary(
        events=7,
        reads=2,
        writes=1,
        deletes=1,
        exports=1,
        sign_ins=0,
        failed_sign_ins=1,
        admin_actions=1,
        failures=2,
        off_hours=0,
        distinct_resources=5,
    )
    assert (first, last) == (start + 60_000, start + 3_599_000)
    assert got[("acme", "u1", start + 3_600_000)][0].events == 1
    vector = dict(zip(FEATURE_NAMES, feature_vector(summary), strict=True))
    assert vector["failure_ratio"] == pytest.approx(2 / 7)
    assert vector["off_hours_share"] == 0.0
    assert vector["distinct_resources"] == 5.0


@pytest.mark.parametrize(
    ("when", "zone", "off"),
    [
        (datetime(2026, 3, 27, 5, 30, tzinfo=UTC), "Europe/Berlin", True),  # 06:30 CET
        (datetime(2026, 3, 27, 6, 30, tzinfo=UTC), "Europe/Berlin", False),  # 07:30 CET
        (datetime(2026, 3, 27, 17, 59, tzinfo=UTC), "Europe/Berlin", False),  # 18:59 CET
        (datetime(2026, 3, 27, 18, 0, tzinfo=UTC), "Europe/Berlin", True),  # 19:00 CET
        (datetime(2026, 3, 30, 16, 30, tzinfo=UTC), "Europe/Berlin", False),  # 18:30 CEST
        (datetime(2026, 3, 30, 17, 30, tzinfo=UTC), "Europe/Berlin", True),  # 19:30 CEST
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), "Europe/Berlin", True),  # Saturday
        (datetime(2026, 3, 27, 1, 0, tzinfo=UTC), "Asia/Kolkata", True),  # 06:30 IST
        (datetime(2026, 3, 27, 1, 30, tzinfo=UTC), "Asia/Kolkata", False),  # 07:00 IST
        (datetime(2026, 3, 27, 3, 0, tzinfo=UTC), "", True),  # no zone: 03:00 UTC
        (datetime(2026, 3, 27, 12, 0, tzinfo=UTC), "", False),
        (datetime(2026, 3, 27, 3, 0, tzinfo=UTC), "Not/AZone", True),  # unusable: UTC
    ],
)
def test_off_hours_on_the_actors_wall_clock(when: datetime, zone: str, off: bool) -> None:
    assert is_off_hours(millis(when), zone) is off


def test_distinct_resources_are_capped() -> None:
    events = [
        ev(T0 + timedelta(seconds=i), "access", resource=("doc", f"d{i}"))
        for i in range(MAX_DISTINCT_RESOURCES + 50)
    ]
    summary = next(iter(stream_windows(events).values()))[0]
    assert summary.distinct_resources == MAX_DISTINCT_RESOURCES
    assert summary.events == MAX_DISTINCT_RESOURCES + 50


def test_feature_set_id_changes_with_the_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    assert features._definition_digest() == features.FEATURE_SET_ID
    moved = dict(features.ACTION_CLASSES)
    moved["reads"] = (Action.ACCESS, Action.EXPORT)
    moved["exports"] = ()
    monkeypatch.setattr(features, "ACTION_CLASSES", moved)
    assert features._definition_digest() != features.FEATURE_SET_ID
    monkeypatch.undo()
    monkeypatch.setattr(features, "WORK_END_HOUR", 18)
    assert features._definition_digest() != features.FEATURE_SET_ID


def test_window_sql_names_each_zone_once_and_refuses_unsafe_names() -> None:
    start, end = T0, T0 + timedelta(days=1)
    sql = features.window_sql(start, end, ["Europe/Berlin", "Europe/Berlin", "x'); DROP", ""])
    assert sql.count("actor_timezone = 'Europe/Berlin'") == 1
    assert "DROP" not in sql
    assert "FROM audit_events FINAL" in sql
    assert "toDateTime64('2026-03-27 09:00:00.000', 3, 'UTC')" in sql


# --- the drift check ------------------------------------------------------------------------

ZONES = [None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
         "America/St_Johns", "Australia/Lord_Howe"]  # fmt: skip
ACTIONS = [a.value for a in Action]


def varied_events(seed: int = 5) -> list[AuditEvent]:
    """A few actors over three days around a DST change, every action, zone and outcome."""
    rng = random.Random(seed)
    out = []
    at = datetime(2026, 3, 28, 18, 0, tzinfo=UTC)
    actors = [(f"u{i}", ZONES[i % len(ZONES)], "acme" if i % 3 else "globex") for i in range(10)]
    for n in range(1500):
        at += timedelta(seconds=rng.randrange(1, 400))
        actor, zone, tenant = rng.choice(actors)
        out.append(
            ev(
                at,
                rng.choice(ACTIONS),
                actor=actor,
                tenant=tenant,
                outcome=rng.choice(["success"] * 8 + ["failure", "denied"]),
                resource=(rng.choice(["doc", "task"]), f"r{rng.randrange(40)}"),
                tz=zone,
            )
        )
        if n == 700:  # one burst over the resource cap
            base = at
            for i in range(MAX_DISTINCT_RESOURCES + 20):
                out.append(
                    ev(base + timedelta(milliseconds=i), "export", "u0", resource=("doc", f"x{i}"))
                )
            at = base + timedelta(seconds=1)
    return out


SQL_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from auditstream.config import ClickHouseSettings
    from auditstream.detectors.anomaly import training
    from auditstream.sinks import query, store
    from auditstream.sinks.rows import to_row
    from auditstream.sinks.tables import EVENT_COLUMN_NAMES
    from datetime import datetime

    home, start, end = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    settings = ClickHouseSettings(dsn=f"chdb://{home}")
    client = store.connect(settings)
    lines = (home.parent / "events.jsonl").read_bytes().splitlines()
    rows = [to_row(line, 0, i) for i, line in enumerate(lines)]
    client.insert("audit_events", rows, column_names=list(EVENT_COLUMN_NAMES))
    # and once more: a repeated insert must not count twice (FINAL)
    client.insert("audit_events", rows[:50], column_names=list(EVENT_COLUMN_NAMES))
    found = training.fetch_windows(
        lambda sql: query.execute(client, sql, settings.database).rows,
        datetime.fromisoformat(start), datetime.fromisoformat(end),
    )
    print(json.dumps([[w.tenant_id, w.actor_id, w.start_ms, list(w.summary), w.first_ms,
                       w.last_ms] for w in found]))
    """
)


def test_sql_and_stream_compute_the_same_windows(tmp_path: Path) -> None:
    events = varied_events()
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(encode(e) for e in events))
    start = datetime(2026, 3, 28, tzinfo=UTC)
    end = datetime(2026, 4, 5, tzinfo=UTC)
    child = subprocess.run(
        [sys.executable, "-c", SQL_CHILD, str(tmp_path / "ch"), start.isoformat(), end.isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    from_sql = {
        (t, a, w): (WindowSummary(*s), f, last)
        for t, a, w, s, f, last in json.loads(child.stdout.strip().splitlines()[-1])
    }
    from_stream = stream_windows(events)
    assert len(from_stream) > 50
    assert from_sql.keys() == from_stream.keys()
    for key, value in from_stream.items():
        assert from_sql[key] == value, key
        assert feature_vector(from_sql[key][0]) == feature_vector(value[0])
    # the sample exercises what could drift
    summaries = [v[0] for v in from_stream.values()]
    assert any(s.distinct_resources == MAX_DISTINCT_RESOURCES for s in summaries)
    assert any(0 < s.off_hours < s.events for s in summaries)
    assert all(sum(getattr(s, c) for c in features.ACTION_CLASSES) == s.events for s in summaries)
