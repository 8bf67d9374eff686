"""The API's query layer: filters -> parameterised SQL, scoped to one tenant.

Every statement built here starts its ``WHERE`` with ``tenant_id = {tenant:String}``, and
every value from a request goes in as a ClickHouse query parameter (``{name:Type}``); the
only text put into SQL is the database name from the settings and column names and
intervals chosen from the fixed tables below. ``Query`` carries the text and its
parameters together, so a caller cannot run one without the other.

Pages use a keyset cursor on ``(occurred_at, event_id)``, the table's own order after the
tenant: a page reads from the cursor on, so events arriving meanwhile never shift or repeat
the rows of later pages. The cursor also pins the page's date range (a default range is
relative to "now", which moves) and a fingerprint of the filters it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from auditstream.schemas.actions import MODIFYING_ACTIONS, expand_action
from auditstream.schemas.limits import DATETIME_END
from auditstream.sinks.tables import EVENTS_TABLE

DEFAULT_PAGE = 20
MAX_PAGE = 100
EXPORT_CHUNK = 10_000
"""Rows an export reads per keyset step: memory stays bounded whatever the export's size."""


class BadRequest(ValueError):
    """A filter, cursor or range the API refuses (HTTP 400); the message says which."""


class Sort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


class Dimension(StrEnum):
    ACTION = "action"
    ENTITY_TYPE = "entity_type"
    ACTOR_TYPE = "actor_type"
    ACTOR = "actor"
    OUTCOME = "outcome"


DIMENSION_COLUMNS: dict[Dimension, str] = {
    Dimension.ACTION: "action",
    Dimension.ENTITY_TYPE: "resource_type",
    Dimension.ACTOR_TYPE: "actor_type",
    Dimension.ACTOR: "actor_id",
    Dimension.OUTCOME: "outcome",
}
INTERVAL_SQL: dict[Interval, str] = {
    Interval.HOUR: "toStartOfHour(occurred_at)",
    Interval.DAY: "toStartOfDay(occurred_at)",
    Interval.WEEK: "toDateTime(toMonday(occurred_at), 'UTC')",
}
INTERVAL_STEP: dict[Interval, timedelta] = {
    Interval.HOUR: timedelta(hours=1),
    Interval.DAY: timedelta(days=1),
    Interval.WEEK: timedelta(weeks=1),
}

SELECT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "toString(event_id)"),
    ("tenant_id", "tenant_id"),
    ("occurred_ms", "toUnixTimestamp64Milli(occurred_at)"),
    ("received_ms", "toUnixTimestamp64Milli(received_at)"),
    ("actor_id", "actor_id"),
    ("actor_type", "actor_type"),
    ("actor_display_name", "actor_display_name"),
    ("actor_email", "actor_email"),
    ("actor_timezone", "actor_timezone"),
    ("action", "action"),
    ("resource_type", "resource_type"),
    ("resource_id", "resource_id"),
    ("resource_name", "resource_name"),
    ("outcome", "outcome"),
    ("ip", "ip"),
    ("session_id", "session_id"),
    ("user_agent", "user_agent"),
    ("channel", "channel"),
    ("country", "country"),
    ("region", "region"),
    ("city", "city"),
    ("latitude", "latitude"),
    ("longitude", "longitude"),
    ("changes_field", "changes.field"),
    ("changes_old", "changes.old"),
    ("changes_new", "changes.new"),
    ("correlation_id", "correlation_id"),
    ("parent_event_id", "ifNull(toString(parent_event_id), '')"),
    ("metadata", "metadata"),
)
"""What a row of ``audit_events`` reads as in the API (name, expression)."""
ROW_NAMES: tuple[str, ...] = tuple(name for name, _ in SELECT_COLUMNS)
_SELECT = ", ".join(f"{expr} AS r_{name}" for name, expr in SELECT_COLUMNS)
"""Aliased apart from the columns (``r_...``): an alias named like a column would replace it
in ``WHERE`` and ``ORDER BY``."""


@dataclass(frozen=True)
class Query:
    """One statement and its parameters."""

    sql: str
    parameters: dict[str, Any]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MS = int(DATETIME_END.timestamp() * 1000)
"""What the store's DateTime64 columns hold: times outside [EPOCH, DATETIME_END] are refused."""


def to_ms(value: datetime) -> int:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Filters:
    """What a request asks for, already validated; the tenant comes from the token only."""

    start: datetime
    end: datetime
    actor_ids: tuple[str, ...] = ()
    actor_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    """Canonical actions, groups already expanded (``build_filters``)."""
    resource_types: tuple[str, ...] = ()
    resource_id: str | None = None
    outcomes: tuple[str, ...] = ()
    ip: str | None = None
    session_id: str | None = None
    search: str | None = None

    def fingerprint(self) -> str:
        """Identifies the filters (not the range) a cursor was made for."""
        doc = [
            self.actor_ids, self.actor_types, self.actions, self.resource_types,
            self.resource_id, self.outcomes, self.ip, self.session_id, self.search,
        ]  # fmt: skip
        return hashlib.sha256(orjson.dumps(doc)).hexdigest()[:16]


def _clean(values: Sequence[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or ():
        for part in value.split(","):
            part = part.strip()
            if part:
                out.append(part)
    return tuple(dict.fromkeys(out))


def _ip(text: str | None) -> str | None:
    """An address as the normalizer stores it (IPv4-mapped IPv6 as IPv4); other text as is
    (the SDK may have hashed addresses)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def build_filters(
    *,
    now: datetime,
    default_days: int,
    max_days: int,
    start: datetime | None = None,
    end: datetime | None = None,
    actor_id: Sequence[str] | None = None,
    actor_type: Sequence[str] | None = None,
    action: Sequence[str] | None = None,
    exact_action: bool = False,
    entity_type: Sequence[str] | None = None,
    entity_id: str | None = None,
    outcome: Sequence[str] | None = None,
    ip: str | None = None,
    session_id: str | None = None,
    q: str | None = None,
) -> Filters:
    """Validated filters: a date range (default the last ``default_days``) of at most
    ``max_days``; actions and groups expanded to canonical actions."""
    end = end or now
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    try:
        start = start or (end - timedelta(days=default_days))
    except OverflowError:
        start = datetime.min.replace(tzinfo=UTC)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    for name, value in (("from", start), ("to", end)):
        if not EPOCH <= value <= DATETIME_END:
            raise BadRequest(f"`{name}` must be between 1970-01-01 and {DATETIME_END:%Y-%m-%d}")
    if start >= end:
        raise BadRequest("`from` must be before `to`")
    if end - start > timedelta(days=max_days):
        raise BadRequest(
            f"the date range covers {(end - start).days} days; at most {max_days} days per "
            "request (AUDITSTREAM_API_MAX_RANGE_DAYS)"
        )
    actions: set[str] = set()
    for name in _clean(action):
        try:
            actions |= {a.value for a in expand_action(name, exact_action)}
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    search = (q or "").strip() or None
    return Filters(
        start=start,
        end=end,
        actor_ids=_clean(actor_id),
        actor_types=tuple(t.lower() for t in _clean(actor_type)),
        actions=tuple(sorted(actions)),
        resource_types=tuple(t.lower() for t in _clean(entity_type)),
        resource_id=(entity_id or "").strip() or None,
        outcomes=tuple(o.lower() for o in _clean(outcome)),
        ip=_ip(ip),
        session_id=(session_id or "").strip() or None,
        search=search,
    )


def where(tenant: str, f: Filters) -> Query:
    """The tenant, the range and every filter, as a ``WHERE`` body and its parameters."""
    clauses = [
        "tenant_id = {tenant:String}",
        "occurred_at >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')",
        "occurred_at < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')",
    ]
    params: dict[str, Any] = {"tenant": tenant, "start_ms": to_ms(f.start), "end_ms": to_ms(f.end)}

    def any_of(column: str, name: str, values: tuple[str, ...]) -> None:
        if values:
            clauses.append(f"{column} IN {{{name}:Array(String)}}")
            params[name] = list(values)

    def equal(column: str, name: str, value: str | None) -> None:
        if value is not None:
            clauses.append(f"{column} = {{{name}:String}}")
            params[name] = value

    any_of("actor_id", "actor_ids", f.actor_ids)
    any_of("actor_type", "actor_types", f.actor_types)
    any_of("action", "actions", f.actions)
    any_of("resource_type", "resource_types", f.resource_types)
    equal("resource_id", "resource_id", f.resource_id)
    any_of("outcome", "outcomes", f.outcomes)
    equal("ip", "ip", f.ip)
    equal("session_id", "session_id", f.session_id)
    if f.search is not None:
        clauses.append(
            "(positionCaseInsensitiveUTF8(resource_name, {q:String}) > 0"
            " OR positionCaseInsensitiveUTF8(resource_id, {q:String}) > 0"
            " OR positionCaseInsensitiveUTF8(actor_display_name, {q:String}) > 0)"
        )
        params["q"] = f.search
    return Query(" AND ".join(clauses), params)


# -- cursors ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after (occurred_ms, event_id), in ``sort`` order, over the
    range the first page resolved, for the filters with ``fingerprint``."""

    occurred_ms: int
    event_id: str
    sort: Sort
    start_ms: int
    end_ms: int
    fingerprint: str

    def encode(self) -> str:
        doc = [1, self.occurred_ms, self.event_id, self.sort.value, self.start_ms,
               self.end_ms, self.fingerprint]  # fmt: skip
        return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            version, occurred, event_id, sort, start, end, fingerprint = orjson.loads(raw)
            if version != 1 or not all(0 <= int(v) <= MAX_MS for v in (occurred, start, end)):
                raise ValueError(version)
            return cls(int(occurred), str(uuid.UUID(str(event_id))), Sort(sort), int(start),
                       int(end), str(fingerprint))  # fmt: skip
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise BadRequest("`cursor` is not one this API returned") from None


def apply_cursor(f: Filters, cursor: Cursor | None, sort: Sort, max_days: int) -> Filters:
    """The filters with the cursor's pinned range (checked against the filters and limits)."""
    if cursor is None:
        return f
    if cursor.fingerprint != f.fingerprint() or cursor.sort is not sort:
        raise BadRequest("`cursor` belongs to other filters or another sort: start again")
    start, end = from_ms(cursor.start_ms), from_ms(cursor.end_ms)
    if not timedelta(0) < end - start <= timedelta(days=max_days):
        raise BadRequest("`cursor` is not one this API returned")
    return replace(f, start=start, end=end)


def _order(sort: Sort) -> str:
    direction = "DESC" if sort is Sort.NEWEST else "ASC"
    return f"occurred_at {direction}, event_id {direction}"


def page(
    database: str, tenant: str, f: Filters, sort: Sort, limit: int, cursor: Cursor | None = None
) -> Query:
    """One page, ``limit + 1`` rows (the extra one says whether there is a next page)."""
    base = where(tenant, f)
    clauses, params = [base.sql], dict(base.parameters)
    if cursor is not None:
        op = "<" if sort is Sort.NEWEST else ">"
        bound = "<=" if sort is Sort.NEWEST else ">="
        at = "fromUnixTimestamp64Milli({cursor_ms:Int64}, 'UTC')"
        clauses.append(f"occurred_at {bound} {at}")
        clauses.append(f"(occurred_at, event_id) {op} ({at}, toUUID({{cursor_id:String}}))")
        params |= {"cursor_ms": cursor.occurred_ms, "cursor_id": cursor.event_id}
    params["limit"] = limit + 1
    sql = (
        f"SELECT {_SELECT} FROM `{database}`.`{EVENTS_TABLE}` WHERE {' AND '.join(clauses)} "
        f"ORDER BY {_order(sort)} LIMIT {{limit:UInt32}}"
    )
    return Query(sql, params)


def count(database: str, tenant: str, f: Filters) -> Query:
    base = where(tenant, f)
    return Query(
        f"SELECT count() FROM `{database}`.`{EVENTS_TABLE}` WHERE {base.sql}", base.parameters
    )


def by_id(database: str, tenant: str, event_id: str) -> Query:
    return Query(
        f"SELECT {_SELECT} FROM `{database}`.`{EVENTS_TABLE}` "
        "WHERE tenant_id = {tenant:String} AND event_id = toUUID({event_id:String}) LIMIT 1",
        {"tenant": tenant, "event_id": event_id},
    )


def children(database: str, tenant: str, event_id: str, limit: int = MAX_PAGE) -> Query:
    return Query(
        f"SELECT {_SELECT} FROM `{database}`.`{EVENTS_TABLE}` "
        "WHERE tenant_id = {tenant:String} AND parent_event_id = toUUID({event_id:String}) "
        "ORDER BY occurred_at, event_id LIMIT {limit:UInt32}",
        {"tenant": tenant, "event_id": event_id, "limit": limit},
    )


def correlated(database: str, tenant: str, correlation_id: str, limit: int = MAX_PAGE) -> Query:
    return Query(
        f"SELECT {_SELECT} FROM `{database}`.`{EVENTS_TABLE}` "
        "WHERE tenant_id = {tenant:String} AND correlation_id = {correlation_id:String} "
        "ORDER BY occurred_at, event_id LIMIT {limit:UInt32}",
        {"tenant": tenant, "correlation_id": correlation_id, "limit": limit},
    )


def retention(database: str) -> Query:
    """The events table's definition (its TTL: ``tables.parse_retention_days``)."""
    return Query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} "
        "AND name = {table:String}",
        {"db": database, "table": EVENTS_TABLE},
    )


# -- analytics ----------------------------------------------------------------------------
def counts_by(
    database: str, tenant: str, f: Filters, dimension: Dimension, limit: int,
    modifying_only: bool = False,
) -> Query:  # fmt: skip
    """(key, label, count) per value of ``dimension``, largest first."""
    base = where(tenant, f)
    clauses, params = [base.sql], dict(base.parameters)
    if modifying_only:
        clauses.append("action IN {modifying:Array(String)}")
        params["modifying"] = sorted(a.value for a in MODIFYING_ACTIONS)
    column = DIMENSION_COLUMNS[dimension]
    label = (
        "any(actor_display_name)" if dimension is Dimension.ACTOR else "''"
    )  # actors: a name to show
    extra = ", any(actor_type)" if dimension is Dimension.ACTOR else ", ''"
    params["limit"] = limit
    return Query(
        f"SELECT {column} AS key, {label} AS label{extra} AS kind, count() AS n "
        f"FROM `{database}`.`{EVENTS_TABLE}` WHERE {' AND '.join(clauses)} "
        "GROUP BY key ORDER BY n DESC, key ASC LIMIT {limit:UInt32}",
        params,
    )


def summary(database: str, tenant: str, f: Filters) -> Query:
    """Events, unique entities, unique actors."""
    base = where(tenant, f)
    return Query(
        "SELECT count(), uniqExact(resource_type, resource_id), uniqExact(actor_id) "
        f"FROM `{database}`.`{EVENTS_TABLE}` WHERE {base.sql}",
        base.parameters,
    )


def trend(database: str, tenant: str, f: Filters, interval: Interval) -> Query:
    base = where(tenant, f)
    return Query(
        f"SELECT toUnixTimestamp({INTERVAL_SQL[interval]}) * 1000 AS bucket, count() AS n "
        f"FROM `{database}`.`{EVENTS_TABLE}` WHERE {base.sql} GROUP BY bucket ORDER BY bucket",
        base.parameters,
    )


def bucket_start(value: datetime, interval: Interval) -> datetime:
    value = value.astimezone(UTC)
    if interval is Interval.HOUR:
        return value.replace(minute=0, second=0, microsecond=0)
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval is Interval.DAY else day - timedelta(days=day.weekday())


def filled(
    rows: Sequence[Sequence[Any]], f: Filters, interval: Interval
) -> list[tuple[datetime, int]]:
    """Every bucket of the range, with 0 where no event fell."""
    found = {int(r[0]): int(r[1]) for r in rows}
    out: list[tuple[datetime, int]] = []
    at = bucket_start(f.start, interval)
    step = INTERVAL_STEP[interval]
    while at < f.end:
        out.append((at, found.pop(to_ms(at), 0)))
        at += step
    out.extend((from_ms(ms), n) for ms, n in sorted(found.items()))  # none expected
    out.sort()
    return out


# -- rows ---------------------------------------------------------------------------------
def _json_value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@dataclass(frozen=True)
class EventRow:
    """A stored event as the API returns it (values decoded: changes' old / new as JSON)."""

    values: Mapping[str, Any]
    changes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, row: Sequence[Any]) -> EventRow:
        values = dict(zip(ROW_NAMES, row, strict=True))
        changes = [
            {"field": name, "old": _json_value(old), "new": _json_value(new)}
            for name, old, new in zip(
                values["changes_field"], values["changes_old"], values["changes_new"],
                strict=False,
            )
        ]  # fmt: skip
        return cls(values, changes)

    @property
    def occurred_at(self) -> datetime:
        return from_ms(int(self.values["occurred_ms"]))

    @property
    def event_id(self) -> str:
        return str(self.values["event_id"])

    def metadata(self) -> dict[str, Any]:
        value = _json_value(str(self.values["metadata"] or "{}"))
        return value if isinstance(value, dict) else {"value": value}

    def cursor(self, sort: Sort, f: Filters) -> Cursor:
        return Cursor(int(self.values["occurred_ms"]), self.event_id, sort, to_ms(f.start),
                      to_ms(f.end), f.fingerprint())  # fmt: skip


def unique(rows: Sequence[EventRow]) -> list[EventRow]:
    """Rows without a copy that ClickHouse has not folded yet (``ReplacingMergeTree`` folds
    at merge time): copies share (occurred_at, event_id), so they are neighbours in a page."""
    out: list[EventRow] = []
    for row in rows:
        if not out or out[-1].event_id != row.event_id:
            out.append(row)
    return out


def rows_of(result: Any) -> Iterator[EventRow]:
    for row in result.result_rows:
        yield EventRow.of(row)
