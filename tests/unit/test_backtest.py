"""Backtest: stored rows back into events, paged in event-time order, through the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner

from auditstream.cli.backtest import backtest
from auditstream.detectors import config, replay
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.registry import default_detectors
from auditstream.schemas.event import AuditEvent
from auditstream.sinks.rows import to_row
from auditstream.sinks.tables import EVENT_COLUMNS

T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def stored(event: AuditEvent) -> list[Any]:
    """The row the sink stores for ``event``, as ``page_sql`` selects it."""
    with_receipt = event.model_copy(update={"received_at": event.occurred_at})
    row = dict(
        zip(
            [n for n, _ in EVENT_COLUMNS],
            to_row(with_receipt.model_dump_json().encode(), 0, 0),
            strict=False,
        )
    )
    row["toUnixTimestamp64Milli(occurred_at)"] = int(event.occurred_at.timestamp() * 1000)
    return [row[c] for c in replay.COLUMNS]


def failures(n: int, actor: str = "root", ip: str = "203.0.113.50") -> list[AuditEvent]:
    return [
        AuditEvent(
            occurred_at=T0 + timedelta(seconds=2 * i),
            tenant_id="acme",
            actor={"id": actor, "timezone": "Europe/Berlin"},
            action="sign_in_failed",
            outcome="failure",
            resource={"type": "host", "id": "bastion"},
            ip=ip,
            location={"country": "NL", "city": "Amsterdam", "latitude": 52.37, "longitude": 4.89},
            changes=[{"field": "attempt", "old": None, "new": {"n": i}}],
            correlation_id=f"req_{i}",
            metadata={"source": "sshd", "port": 40000 + i},
        )
        for i in range(n)
    ]


def test_a_stored_row_is_the_event_again() -> None:
    [event] = failures(1)
    again = replay.event_from_row(stored(event))
    assert again.model_dump(exclude={"received_at"}) == event.model_dump(exclude={"received_at"})


class Store:
    """Answers ``page_sql`` like the store: the page after the keyset, in order."""

    def __init__(self, events: list[AuditEvent]) -> None:
        self.rows = sorted((stored(e) for e in events), key=lambda r: (r[2], str(r[0])))
        self.statements: list[str] = []

    def __call__(self, sql: str) -> list[list[Any]]:
        self.statements.append(sql)
        after = None
        if "toUUID('" in sql:
            ms = int(sql.split(") > (")[1].split(",")[0])
            event_id = sql.split("toUUID('")[1].split("'")[0]
            after = (ms, event_id)
        page = int(sql.rsplit("LIMIT ", 1)[1])
        rows = [r for r in self.rows if after is None or (r[2], str(r[0])) > after]
        return rows[:page]


def test_events_are_read_a_page_at_a_time_in_order() -> None:
    events = failures(25)
    store = Store(events)
    read = list(replay.stored_events(store, T0, T0 + timedelta(hours=1), page=10))
    assert [e.event_id for e in read] == [
        e.event_id for e in sorted(events, key=lambda e: e.occurred_at)
    ]
    assert len(store.statements) == 3
    assert "FROM audit_events FINAL" in store.statements[0]


def test_backtest_reports_what_the_rules_would_have_raised() -> None:
    detectors = default_detectors()
    engine = DetectionEngine(detectors, config.build({}, detectors))
    store = Store(failures(26))
    result = replay.run(engine, replay.stored_events(store, T0, T0 + timedelta(hours=1)))
    assert result.events == 26
    assert result.by_rule == {"account_sign_in_failures": 1, "source_sign_in_failures": 1}
    # One incident each, kept once (its last update): 20 failures at the update.
    [account] = [a for a in result.alerts if a.rule == "account_sign_in_failures"]
    assert account.observations[0].observed == 20
    only = replay.run(
        engine,
        replay.stored_events(Store(failures(26)), T0, T0 + timedelta(hours=1)),
        ["brute_force"],
    )
    assert only.alerts == []


def test_backtest_refuses_an_unknown_rule() -> None:
    result = CliRunner().invoke(backtest, ["--rules", "no_such_rule"])
    assert result.exit_code == 2
    assert "unknown rule" in result.output
