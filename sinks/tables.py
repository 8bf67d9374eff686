"""ClickHouse tables: created when missing, the same DDL on chDB and on a server.

``audit_events`` is ordered for the usual analyst query (one tenant, a time range) and
partitioned by month; TTL drops whole parts once every row in them is past retention.
ReplacingMergeTree on (tenant_id, occurred_at, event_id) folds any duplicate that slipped
past the sink's own checks; ``insert_deduplication_token`` makes a retried batch a no-op.
``security_alerts`` follows the same pattern, keyed by the alert's stable id.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditstream.schemas.limits import DATETIME_END, max_retention_days
from auditstream.schemas.record import CHAIN_COLUMNS, STORED_FIELDS

log = logging.getLogger(__name__)

EVENT_COLUMNS: tuple[tuple[str, str], ...] = tuple((f.name, f.ch_type) for f in STORED_FIELDS)
"""From ``schemas/record.py`` (the one description of a stored event).
``raw_partition`` / ``raw_offset``: where the event was read from the raw topic (the
``auditstream.source.*`` headers; docs/decisions/0001-accounting-contract.md), or
``NO_RAW_PARTITION`` / ``NO_RAW_OFFSET`` when the message did not say."""

NO_RAW_PARTITION = 2**32 - 1
NO_RAW_OFFSET = 2**64 - 1
RAW_POSITION_COLUMNS = (("raw_partition", "UInt32"), ("raw_offset", "UInt64"))

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMNS)
EVENTS_TABLE = "audit_events"

ALERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("alert_id", "UUID"),
    ("schema_version", "UInt8"),
    ("rule", "LowCardinality(String)"),
    ("severity", "LowCardinality(String)"),
    ("tenant_id", "LowCardinality(String)"),
    ("actor_id", "String"),
    ("subject", "String"),
    ("title", "String"),
    ("explanation", "String"),
    ("observations.metric", "Array(String)"),
    ("observations.observed", "Array(Float64)"),
    ("observations.baseline", "Array(Nullable(Float64))"),
    ("observations.unit", "Array(String)"),
    ("window_start", "DateTime64(3, 'UTC')"),
    ("window_end", "DateTime64(3, 'UTC')"),
    ("first_seen", "DateTime64(3, 'UTC')"),
    ("last_seen", "DateTime64(3, 'UTC')"),
    ("detected_at", "DateTime64(3, 'UTC')"),
    ("evidence_event_ids", "Array(UUID)"),
    ("mitre_technique", "LowCardinality(String)"),
    ("mitre_name", "String"),
    ("context", "String"),
    ("kafka_partition", "UInt32"),
    ("kafka_offset", "UInt64"),
)
ALERT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in ALERT_COLUMNS)
ALERTS_TABLE = "security_alerts"


@dataclass(frozen=True)
class TableSpec:
    """One sink table: its columns and the keys the writer and the DDL need."""

    name: str
    columns: tuple[tuple[str, str], ...]
    id_column: str
    tenant_column: str
    time_column: str
    indexes: tuple[str, ...] = ()
    check_stored: bool = True
    """Skip rows whose (tenant, id) is already stored (events, alerts); the accounting
    tables rely on their ReplacingMergeTree key (the source position) instead."""
    raw_position: tuple[str, str] | None = None
    """(partition, offset) columns of the raw position: a row skipped as already stored
    from another raw position is recorded as a repeat."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def index_of(self, column: str) -> int:
        return self.column_names.index(column)


EVENTS = TableSpec(
    name=EVENTS_TABLE,
    columns=EVENT_COLUMNS,
    id_column="event_id",
    tenant_column="tenant_id",
    time_column="occurred_at",
    indexes=(
        "INDEX idx_actor actor_id TYPE bloom_filter GRANULARITY 4",
        "INDEX idx_resource resource_id TYPE bloom_filter GRANULARITY 4",
        "INDEX idx_event event_id TYPE bloom_filter GRANULARITY 4",
    ),
    raw_position=("raw_partition", "raw_offset"),
)
ALERTS = TableSpec(
    name=ALERTS_TABLE,
    columns=ALERT_COLUMNS,
    id_column="alert_id",
    tenant_column="tenant_id",
    time_column="window_start",
    indexes=("INDEX idx_subject subject TYPE bloom_filter GRANULARITY 4",),
)


def _column_lines(spec: TableSpec) -> list[str]:
    """Plain columns, with ``a.b`` columns grouped into one ``Nested`` at the first's place."""
    lines: list[str] = []
    nested_done: set[str] = set()
    for name, ch_type in spec.columns:
        if "." not in name:
            lines.append(f"    `{name}` {ch_type}")
            continue
        group = name.split(".", 1)[0]
        if group in nested_done:
            continue
        nested_done.add(group)
        parts = [
            f"{n.split('.', 1)[1]} {t.removeprefix('Array(')[:-1]}"
            for n, t in spec.columns
            if n.startswith(group + ".")
        ]
        lines.append(f"    `{group}` Nested({', '.join(parts)})")
    return lines


def _ddl(spec: TableSpec, database: str, retention_days: int) -> str:
    lines = _column_lines(spec)
    lines.append("    `stored_at` DateTime64(3, 'UTC') DEFAULT now64(3)")
    lines.extend(f"    {index}" for index in spec.indexes)
    body = ",\n".join(lines)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{spec.name}` (\n{body}\n)\n"
        "ENGINE = ReplacingMergeTree\n"
        f"PARTITION BY toYYYYMM({spec.time_column})\n"
        f"ORDER BY ({spec.tenant_column}, {spec.time_column}, {spec.id_column})\n"
        f"TTL toDateTime({spec.time_column}) + INTERVAL {retention_days} DAY DELETE\n"
        "SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1"
    )


def events_ddl(database: str, retention_days: int) -> str:
    return _ddl(EVENTS, database, retention_days)


def alerts_ddl(database: str, retention_days: int) -> str:
    return _ddl(ALERTS, database, retention_days)


def _retention_ddl(spec: TableSpec, database: str, retention_days: int) -> str:
    return (
        f"ALTER TABLE `{database}`.`{spec.name}` MODIFY TTL "
        f"toDateTime({spec.time_column}) + INTERVAL {retention_days} DAY DELETE"
    )


def retention_ddl(database: str, retention_days: int, spec: TableSpec | None = None) -> str:
    """The explicit retention change (``auditstream retention set``); nothing else runs it."""
    return _retention_ddl(spec or EVENTS, database, retention_days)


def spec_named(name: str) -> TableSpec:
    """``audit_events`` / ``events`` or ``security_alerts`` / ``alerts``."""
    for spec in (EVENTS, ALERTS):
        if name in (spec.name, spec.name.split("_", 1)[1], spec.name.split("_", 1)[0]):
            return spec
    raise ValueError(f"unknown table {name!r}: events ({EVENTS_TABLE}) or alerts ({ALERTS_TABLE})")


_TTL_DAYS = re.compile(r"TTL .*?(?:toIntervalDay\((\d+)\)|INTERVAL (\d+) DAY\b)")


def parse_retention_days(engine_full: str) -> int | None:
    """The TTL in days from ``system.tables.engine_full`` (None: no TTL we recognise)."""
    match = _TTL_DAYS.search(str(engine_full))
    return None if match is None else int(match.group(1) or match.group(2))


def current_retention_days(client: Any, database: str, spec: TableSpec) -> int | None:
    """The table's TTL in days as stored (None: no such table, or no TTL)."""
    current = client.command(
        "SELECT engine_full FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        parameters={"db": database, "t": spec.name},
    )
    return parse_retention_days(str(current)) if current else None


def check_retention_days(retention_days: int, now: datetime | None = None) -> None:
    """Refuse a retention the store cannot keep: at least a day, and short enough that the
    TTL of new events stays inside ClickHouse's ``DateTime`` (past its end, TTL arithmetic
    wraps to 1970 and the next merge would delete every row)."""
    if retention_days < 1:
        raise ValueError("retention must be at least 1 day")
    longest = max_retention_days(now or datetime.now(UTC))
    if retention_days > longest:
        raise ValueError(
            f"a retention of {retention_days} days is longer than the store can keep: "
            f"its TTL would pass {DATETIME_END:%Y-%m-%d} (the end of ClickHouse's DateTime) "
            f"and wrap, deleting every row; the longest retention today is {longest} days"
        )


def set_retention(client: Any, database: str, spec: TableSpec, retention_days: int) -> None:
    """Change the TTL of an existing table (rows past the new horizon go at the next merges)."""
    check_retention_days(retention_days)
    client.command(_retention_ddl(spec, database, retention_days))


def _ensure(client: Any, spec: TableSpec, database: str, retention_days: int) -> None:
    """Create the table when missing; never change an existing table's TTL.

    Changing retention deletes data, so it is an explicit, audited admin command
    (``auditstream retention set``), not a side effect of a setting at start-up.
    """
    client.command(_ddl(spec, database, retention_days))
    stored = current_retention_days(client, database, spec)
    if stored is not None and stored != retention_days:
        log.warning(
            "%s keeps its retention of %d days; the configured %d days apply only to a new "
            "store. To change it: auditstream retention set %d --table %s",
            spec.name,
            stored,
            retention_days,
            retention_days,
            spec.name.split("_", 1)[1],
        )


def ensure(client: Any, database: str, retention_days: int) -> None:
    """The database and ``audit_events``."""
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    _ensure(client, EVENTS, database, retention_days)


def ensure_alerts(client: Any, database: str, retention_days: int) -> None:
    """``security_alerts`` (after ``ensure``)."""
    _ensure(client, ALERTS, database, retention_days)


# -- accounting (docs/decisions/0001-accounting-contract.md) --------------------------------
DEAD_LETTERS_TABLE = "audit_dead_letters"
DEAD_LETTER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_topic", "LowCardinality(String)"),
    ("source_partition", "UInt32"),
    ("source_offset", "UInt64"),
    ("reason", "LowCardinality(String)"),
    ("detail", "String"),
    ("failed_at", "DateTime64(3, 'UTC')"),
    ("failed_topic", "LowCardinality(String)"),
    ("failed_partition", "UInt32"),
    ("failed_offset", "UInt64"),
    ("key", "String"),
    ("payload", "String"),
    ("payload_size", "UInt64"),
    ("payload_sha256", "FixedString(64)"),
    ("payload_truncated", "Bool"),
    ("original_size", "UInt64"),
    ("original_sha256", "String"),
    ("kafka_partition", "UInt32"),
    ("kafka_offset", "UInt64"),
)
"""``source_*``: the raw position (``auditstream.source.*`` headers, else the
``auditstream.dlq.*`` ones); ``failed_*``: where the message failed (``auditstream.dlq.*``);
``payload``: the first ``DEAD_LETTER_PAYLOAD_BYTES`` bytes of the message's value,
``payload_size`` / ``payload_sha256`` of the whole value as received; ``original_*``: what the
normalizer says of a payload it truncated (0 / '' when it did not)."""
DEAD_LETTER_PAYLOAD_BYTES = 65_536

REPEATS_TABLE = "audit_repeats"
REPEAT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_topic", "LowCardinality(String)"),
    ("source_partition", "UInt32"),
    ("source_offset", "UInt64"),
    ("tenant_id", "LowCardinality(String)"),
    ("event_id", "UUID"),
    ("stage", "LowCardinality(String)"),
    ("recorded_at", "DateTime64(3, 'UTC')"),
)

DEAD_LETTERS = TableSpec(
    name=DEAD_LETTERS_TABLE,
    columns=DEAD_LETTER_COLUMNS,
    id_column="source_offset",
    tenant_column="source_topic",
    time_column="failed_at",
    check_stored=False,
)
REPEATS = TableSpec(
    name=REPEATS_TABLE,
    columns=REPEAT_COLUMNS,
    id_column="source_offset",
    tenant_column="tenant_id",
    time_column="recorded_at",
    check_stored=False,
)
ACCOUNTING_ORDER = ("source_topic", "source_partition", "source_offset")


def accounting_ddl(spec: TableSpec, database: str, retention_days: int) -> str:
    """One row per source position (a redelivered record folds into it)."""
    lines = [f"    `{name}` {ch_type}" for name, ch_type in spec.columns]
    lines.append("    `stored_at` DateTime64(3, 'UTC') DEFAULT now64(3)")
    body = ",\n".join(lines)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{spec.name}` (\n{body}\n)\n"
        "ENGINE = ReplacingMergeTree\n"
        f"PARTITION BY toYYYYMM({spec.time_column})\n"
        f"ORDER BY ({', '.join(ACCOUNTING_ORDER)})\n"
        f"TTL toDateTime({spec.time_column}) + INTERVAL {retention_days} DAY DELETE\n"
        "SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1"
    )


def ensure_accounting(
    client: Any, database: str, retention_days: int, alert_retention_days: int
) -> None:
    """``audit_events``' raw position columns (tables made before them), and the
    ``audit_dead_letters`` / ``audit_repeats`` tables. Run after ``ensure``.

    The accounting tables keep their rows as long as the longer of the events' and alerts'
    retention *as the tables have it* (the settings for a new store). Their TTL is only ever
    raised to follow a longer retention (``auditstream retention set``), never shortened:
    shortening deletes data, which only that explicit command may do."""
    for name, ch_type in RAW_POSITION_COLUMNS:
        sentinel = NO_RAW_PARTITION if ch_type == "UInt32" else NO_RAW_OFFSET
        client.command(
            f"ALTER TABLE `{database}`.`{EVENTS_TABLE}` ADD COLUMN IF NOT EXISTS "
            f"`{name}` {ch_type} DEFAULT {sentinel}"
        )
    # Tamper evidence (docs/decisions/0005): rows stored before it have chain_seq 0.
    for f in CHAIN_COLUMNS:
        client.command(
            f"ALTER TABLE `{database}`.`{EVENTS_TABLE}` ADD COLUMN IF NOT EXISTS "
            f"`{f.name}` {f.ch_type}"
        )
    kept = [current_retention_days(client, database, spec) for spec in (EVENTS, ALERTS)]
    days = max(
        kept[0] if kept[0] is not None else retention_days,
        kept[1] if kept[1] is not None else alert_retention_days,
    )
    for spec in (DEAD_LETTERS, REPEATS):
        client.command(accounting_ddl(spec, database, days))
        stored = current_retention_days(client, database, spec)
        if stored is not None and stored < days:
            client.command(_retention_ddl(spec, database, days))


# -- audit reviews (reviews/) ---------------------------------------------------------------
REVIEW_SCHEDULES_TABLE = "review_schedules"
REVIEW_SCHEDULE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "LowCardinality(String)"),
    ("every", "LowCardinality(String)"),
    ("owner", "String"),
    ("checks", "String"),
    ("set_by", "String"),
    ("set_at", "DateTime64(3, 'UTC')"),
)
"""One schedule per tenant (the latest ``set_at`` wins): ``every`` week / month / quarter,
``owner`` the actor id who signs reviews off, ``checks`` the tenant's own checklist
additions as JSON (``reviews/checklist.py``). No TTL: a schedule outlives any retention."""


def review_schedules_ddl(database: str) -> str:
    lines = [f"    `{name}` {ch_type}" for name, ch_type in REVIEW_SCHEDULE_COLUMNS]
    body = ",\n".join(lines)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{REVIEW_SCHEDULES_TABLE}` (\n{body}\n)\n"
        "ENGINE = ReplacingMergeTree(set_at)\nORDER BY (tenant_id)"
    )


def ensure_reviews(client: Any, database: str) -> None:
    """``review_schedules`` (created by the first ``auditstream reviews schedule``)."""
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    client.command(review_schedules_ddl(database))
