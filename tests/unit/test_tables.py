"""The ``audit_events`` DDL, and when ``ensure`` changes the retention."""

from __future__ import annotations

import re
from typing import Any

import pytest

from auditstream.sinks.tables import (
    EVENT_COLUMN_NAMES,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    ensure,
    events_ddl,
    retention_ddl,
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
    assert len(set(EVENT_COLUMN_NAMES)) == len(EVENT_COLUMN_NAMES) == 32
    assert EVENT_COLUMN_NAMES[:3] == ("event_id", "schema_version", "tenant_id")
    assert EVENT_COLUMN_NAMES[-2:] == ("kafka_partition", "kafka_offset")


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


def test_ensure_changes_retention_when_it_differs() -> None:
    client = RecordingClient(ENGINE_FULL_30_DAYS)
    ensure(client, "db", 90)
    assert client.commands[-1] == retention_ddl("db", 90)


def test_ensure_leaves_unchanged_retention_alone() -> None:
    # ClickHouse renders the TTL interval as toIntervalDay(30), never "INTERVAL 30 DAY":
    # ensure() must still see that the retention is unchanged and not ALTER the table
    # (MODIFY TTL re-materialises the TTL of every part on each start).
    client = RecordingClient(ENGINE_FULL_30_DAYS)
    ensure(client, "db", 30)
    assert not any(c.startswith("ALTER TABLE") for c in client.commands)


def test_ensure_changes_retention_that_only_shares_a_prefix() -> None:
    client = RecordingClient(
        ENGINE_FULL_30_DAYS.replace("toIntervalDay(30)", "toIntervalDay(3650)")
    )
    ensure(client, "db", 365)
    assert client.commands[-1] == retention_ddl("db", 365)
