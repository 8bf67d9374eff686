"""ClickHouse tables: created when missing, the same DDL on chDB and on a server.

``audit_events`` is ordered for the usual analyst query (one tenant, a time range) and
partitioned by month; TTL drops whole parts once every row in them is past retention.
ReplacingMergeTree on (tenant_id, occurred_at, event_id) folds any duplicate that slipped
past the sink's own checks; ``insert_deduplication_token`` makes a retried batch a no-op.
"""

from __future__ import annotations

import re
from typing import Any

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "UUID"),
    ("schema_version", "UInt8"),
    ("tenant_id", "LowCardinality(String)"),
    ("occurred_at", "DateTime64(3, 'UTC')"),
    ("received_at", "DateTime64(3, 'UTC')"),
    ("actor_id", "String"),
    ("actor_type", "LowCardinality(String)"),
    ("actor_display_name", "String"),
    ("actor_email", "String"),
    ("actor_timezone", "LowCardinality(String)"),
    ("action", "LowCardinality(String)"),
    ("resource_type", "LowCardinality(String)"),
    ("resource_id", "String"),
    ("resource_name", "String"),
    ("outcome", "LowCardinality(String)"),
    ("ip", "String"),
    ("session_id", "String"),
    ("user_agent", "String"),
    ("channel", "LowCardinality(String)"),
    ("country", "LowCardinality(String)"),
    ("region", "String"),
    ("city", "String"),
    ("latitude", "Nullable(Float64)"),
    ("longitude", "Nullable(Float64)"),
    ("changes.field", "Array(String)"),
    ("changes.old", "Array(String)"),
    ("changes.new", "Array(String)"),
    ("correlation_id", "String"),
    ("parent_event_id", "Nullable(UUID)"),
    ("metadata", "String"),
    ("kafka_partition", "UInt32"),
    ("kafka_offset", "UInt64"),
)

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMNS)
EVENTS_TABLE = "audit_events"


def events_ddl(database: str, retention_days: int) -> str:
    nested = [name.split(".", 1)[1] for name, _ in EVENT_COLUMNS if name.startswith("changes.")]
    columns = []
    for name, ch_type in EVENT_COLUMNS:
        if name == "changes.field":
            fields = ", ".join(f"{part} String" for part in nested)
            columns.append(f"    `changes` Nested({fields})")
        elif not name.startswith("changes."):
            columns.append(f"    `{name}` {ch_type}")
    columns.append("    `stored_at` DateTime64(3, 'UTC') DEFAULT now64(3)")
    columns.append("    INDEX idx_actor actor_id TYPE bloom_filter GRANULARITY 4")
    columns.append("    INDEX idx_resource resource_id TYPE bloom_filter GRANULARITY 4")
    columns.append("    INDEX idx_event event_id TYPE bloom_filter GRANULARITY 4")
    body = ",\n".join(columns)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{EVENTS_TABLE}` (\n{body}\n)\n"
        "ENGINE = ReplacingMergeTree\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        "ORDER BY (tenant_id, occurred_at, event_id)\n"
        f"TTL toDateTime(occurred_at) + INTERVAL {retention_days} DAY DELETE\n"
        "SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1"
    )


def retention_ddl(database: str, retention_days: int) -> str:
    """Applied on every start, so changing the retention setting takes effect."""
    return (
        f"ALTER TABLE `{database}`.`{EVENTS_TABLE}` MODIFY TTL "
        f"toDateTime(occurred_at) + INTERVAL {retention_days} DAY DELETE"
    )


def ensure(client: Any, database: str, retention_days: int) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    client.command(events_ddl(database, retention_days))
    current = client.command(
        "SELECT engine_full FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        parameters={"db": database, "t": EVENTS_TABLE},
    )
    # ClickHouse reports the TTL as ``toIntervalDay(N)``; only ALTER when N differs.
    if not re.search(
        rf"toIntervalDay\({retention_days}\)|INTERVAL {retention_days} DAY\b", str(current)
    ):
        client.command(retention_ddl(database, retention_days))
