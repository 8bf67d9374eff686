"""The ``audit_events`` DDL, and when ``ensure`` changes the retention."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from auditstream.sinks.tables import (
    ALERTS,
    EVENT_COLUMN_NAMES,
    EVENT_COLUMNS,
    EVENTS,
    EVENTS_TABLE,
    ensure,
    events_ddl,
    parse_retention_days,
    retention_ddl,
    spec_named,
)

# What ClickHouse (24.x / chDB 3.x) reports in system.tables.engine_full for events_ddl(db, 30)
ENGINE_FULL_30_DAYS = (
    "ReplacingMergeTree PARTITION BY toYYYYMM(occurred_at) ORDER BY (tenant_id, occurred_at, "
    "event_id) TTL toDateTime(occurred_at) + toIntervalDay(30) SETTINGS "
    "non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1, "
    "index_granularity = 8192"
)


def test_column_names_follow_columns() -> None:
    assert tuple(name for name, _ in EVENT_COLUMNS) == EVENT_COLUMN_NAMES
    assert len(set(EVENT_COLUMN_NAMES)) == len(EVENT_COLUMN_NAMES) == 37
    assert EVENT_COLUMN_NAMES[:3] == ("event_id", "schema_version", "tenant_id")
    assert EVENT_COLUMN_NAMES[-7:] == (
        "kafka_partition",
        "kafka_offset",
        "raw_partition",
        "raw_offset",
        "chain_seq",
        "chain_prev",
        "record_hash",
    )


def test_ddl_header_and_engine() -> None:
    ddl = events_ddl("analytics", 90)
    assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS `analytics`.`{EVENTS_TABLE}` (\n")
    assert "ENGINE = ReplacingMergeTree\n" in ddl
    assert "PARTITION BY toYYYYMM(occurred_at)\n" in ddl
    assert "ORDER BY (tenant_id, occurred_at, event_id)\n" in ddl
    assert "ttl_only_drop_parts = 1" in ddl


@pytest.mark.parametrize("days", [1, 30, 365, 3650])
def test_ddl_ttl_uses_the_configured_days(days: int) -> None:
    ddl = events_ddl("db", days)
    assert f"TTL toDateTime(occurred_at) + INTERVAL {days} DAY DELETE\n" in ddl
    assert len(re.findall(r"INTERVAL \d+ DAY", ddl)) == 1


def test_ddl_declares_every_plain_column_with_its_type() -> None:
    ddl = events_ddl("db", 30)
    for name, ch_type in EVENT_COLUMNS:
        if not name.startswith("changes."):
            assert f"    `{name}` {ch_type},\n" in ddl, name
    assert "    `stored_at` DateTime64(3, 'UTC') DEFAULT now64(3),\n" in ddl


def test_ddl_changes_is_one_nested_column() -> None:
    ddl = events_ddl("db", 30)
    assert "    `changes` Nested(field String, old String, new String),\n" in ddl
    assert "`changes.field`" not in ddl
    assert "`changes.old`" not in ddl
    assert "`changes.new`" not in ddl
    assert ddl.count("Nested(") == 1


def test_ddl_column_order_matches_rows() -> None:
    ddl = events_ddl("db", 30)
    declared = re.findall(r"^    `([a-z_]+)` ", ddl, flags=re.M)
    expected: list[str] = []
    for name in EVENT_COLUMN_NAMES:
        top = name.split(".", 1)[0]
        if top not in expected:
            expected.append(top)
    assert declared == [*expected, "stored_at"]


def test_ddl_has_skip_indexes() -> None:
    ddl = events_ddl("db", 30)
    for column in ("actor_id", "resource_id", "event_id"):
        assert re.search(rf"INDEX idx_\w+ {column} TYPE bloom_filter GRANULARITY 4", ddl)


def test_retention_ddl() -> None:
    assert retention_ddl("db", 45) == (
        f"ALTER TABLE `db`.`{EVENTS_TABLE}` MODIFY TTL "
        "toDateTime(occurred_at) + INTERVAL 45 DAY DELETE"
    )


class RecordingClient:
    """Stands in for a ClickHouse client: records commands, answers the engine query."""

    def __init__(self, engine_full: str) -> None:
        self.engine_full = engine_full
        self.commands: list[str] = []

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> str:
        self.commands.append(sql)
        if sql.startswith("SELECT engine_full"):
            assert parameters == {"db": "db", "t": EVENTS_TABLE}
            return self.engine_full
        return ""


def test_ensure_creates_database_and_table() -> None:
    client = RecordingClient(events_ddl("db", 30))
    ensure(client, "db", 30)
    assert client.commands[0] == "CREATE DATABASE IF NOT EXISTS `db`"
    assert client.commands[1] == events_ddl("db", 30)


def test_ensure_never_changes_an_existing_retention(caplog: pytest.LogCaptureFixture) -> None:
    # Changing the TTL deletes data: the sink's start-up never does it, it says how.
    client = RecordingClient(ENGINE_FULL_30_DAYS)
    with caplog.at_level(logging.WARNING):
        ensure(client, "db", 90)
    assert not any(c.startswith("ALTER TABLE") for c in client.commands)
    [line] = [r.getMessage() for r in caplog.records]
    assert "keeps its retention of 30 days" in line
    assert "auditstream retention set 90 --table events" in line


def test_retention_days_parsed_exactly() -> None:
    assert parse_retention_days(ENGINE_FULL_30_DAYS) == 30
    assert parse_retention_days(ENGINE_FULL_30_DAYS.replace("(30)", "(3650)")) == 3650
    assert parse_retention_days("MergeTree ORDER BY x") is None


def test_spec_named() -> None:
    assert spec_named("events") is spec_named("audit_events") is EVENTS
    assert spec_named("alerts") is spec_named("security_alerts") is ALERTS
    with pytest.raises(ValueError, match="unknown table"):
        spec_named("users")
