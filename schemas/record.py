"""A stored event, field by field, and its canonical bytes (docs/decisions/0005).

``RECORD_FIELDS`` describes every column of a stored event once: its name, its ClickHouse
type and its kind. The sink's table (``sinks/tables.py``) takes its columns from it, the
verifier its SELECT list, and ``canonical_bytes`` its order. The same bytes are hashed by the
sink, recomputed by ``auditstream verify`` from the store and by ``auditstream verify-export``
from an exported file, so the three can never disagree about what a record says.

Canonical bytes: one compact JSON object, keys in ``RECORD_FIELDS`` order, UTF-8, and values
made exact by kind:

* ``uuid``: lower-case hyphenated text (``None`` for an empty nullable one);
* ``time``: UTC, millisecond precision, ``2026-12-02T18:41:39.123Z``;
* ``int``: the integer; ``float``: the float (orjson's shortest round-trip form), or null;
* ``text``: the string as stored; ``texts``: the list of strings as stored (change values and
  ``metadata`` are JSON text in the store and are hashed as that text, byte for byte).

Each kind accepts what the sink holds (``uuid.UUID``, ``datetime``), what a read-only query
returns (text, milliseconds since the epoch) and its own canonical form, so
``canonical_bytes(orjson.loads(canonical_bytes(r)))`` is ``canonical_bytes(r)``.

The record hash is ``sha256(canonical_bytes(record))`` in hex; the record includes its chain
link (``chain_seq``, ``chain_prev``), so the hash covers its place in the chain as well.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from auditstream.schemas.event import format_ts

Kind = Literal["uuid", "uuid?", "time", "int", "float?", "text", "texts"]

GENESIS = "0" * 64
"""``chain_prev`` of the first record of a chain."""


@dataclass(frozen=True)
class RecordField:
    name: str
    """The column, and the key in the canonical JSON."""
    ch_type: str
    kind: Kind


def _f(name: str, ch_type: str, kind: Kind) -> RecordField:
    return RecordField(name, ch_type, kind)


RECORD_FIELDS: tuple[RecordField, ...] = (
    _f("event_id", "UUID", "uuid"),
    _f("schema_version", "UInt8", "int"),
    _f("tenant_id", "LowCardinality(String)", "text"),
    _f("occurred_at", "DateTime64(3, 'UTC')", "time"),
    _f("received_at", "DateTime64(3, 'UTC')", "time"),
    _f("actor_id", "String", "text"),
    _f("actor_type", "LowCardinality(String)", "text"),
    _f("actor_display_name", "String", "text"),
    _f("actor_email", "String", "text"),
    _f("actor_timezone", "LowCardinality(String)", "text"),
    _f("action", "LowCardinality(String)", "text"),
    _f("resource_type", "LowCardinality(String)", "text"),
    _f("resource_id", "String", "text"),
    _f("resource_name", "String", "text"),
    _f("outcome", "LowCardinality(String)", "text"),
    _f("ip", "String", "text"),
    _f("session_id", "String", "text"),
    _f("user_agent", "String", "text"),
    _f("channel", "LowCardinality(String)", "text"),
    _f("country", "LowCardinality(String)", "text"),
    _f("region", "String", "text"),
    _f("city", "String", "text"),
    _f("latitude", "Nullable(Float64)", "float?"),
    _f("longitude", "Nullable(Float64)", "float?"),
    _f("changes.field", "Array(String)", "texts"),
    _f("changes.old", "Array(String)", "texts"),
    _f("changes.new", "Array(String)", "texts"),
    _f("correlation_id", "String", "text"),
    _f("parent_event_id", "Nullable(UUID)", "uuid?"),
    _f("metadata", "String", "text"),
    _f("kafka_partition", "UInt32", "int"),
    _f("kafka_offset", "UInt64", "int"),
    _f("raw_partition", "UInt32", "int"),
    _f("raw_offset", "UInt64", "int"),
    _f("chain_seq", "UInt64", "int"),
    _f("chain_prev", "String", "text"),
)
"""Every hashed column of ``audit_events``, in canonical order. ``record_hash`` (the hash of
the rest) follows them in the table."""

HASH_FIELD = RecordField("record_hash", "String", "text")
STORED_FIELDS: tuple[RecordField, ...] = (*RECORD_FIELDS, HASH_FIELD)
"""The table's columns, in order (``sinks/tables.py`` adds ``stored_at``, not hashed)."""
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in RECORD_FIELDS)
CHAIN_COLUMNS: tuple[RecordField, ...] = (RECORD_FIELDS[-2], RECORD_FIELDS[-1], HASH_FIELD)
"""Added to tables made before tamper evidence (``ALTER TABLE ... ADD COLUMN``)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _time(value: Any) -> str:
    if isinstance(value, datetime):
        # format_ts's form, by the C isoformat: this runs for every stored row, twice.
        return _utc(value).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, int) and not isinstance(value, bool):
        return format_ts(_EPOCH + timedelta(milliseconds=value))
    if isinstance(value, str):  # the canonical form itself (an exported record)
        return _time(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(f"not a time: {value!r}")


def canonical_time(value: Any) -> str:
    """A time as the canonical bytes have it (``…T01:02:03.456Z``), from any stored form."""
    return _time(value)


def _text(value: Any) -> Any:
    if type(value) is not str:
        raise TypeError(f"not text: {value!r}")
    return value


def _int(value: Any) -> Any:
    if type(value) is not int:
        raise TypeError(f"not an integer: {value!r}")
    return value


def _uuid(value: Any) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _optional_uuid(value: Any) -> str | None:
    return None if value is None or value == "" else _uuid(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(type(v) is str for v in value):
        raise TypeError(f"not a list of text: {value!r}")
    return list(value)


_CONVERTERS: dict[Kind, Any] = {
    "text": _text,
    "int": _int,
    "time": _time,
    "uuid": _uuid,
    "uuid?": _optional_uuid,
    "float?": _optional_float,
    "texts": _texts,
}
_PLAN = tuple((f.name, _CONVERTERS[f.kind]) for f in RECORD_FIELDS)


def canonical(values: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """The record as plain JSON values, keys in canonical order. ``values``: a row in
    ``RECORD_FIELDS`` order (longer rows are cut) or a mapping by field name."""
    if isinstance(values, Mapping):
        return {name: convert(values[name]) for name, convert in _PLAN}
    return {name: convert(v) for (name, convert), v in zip(_PLAN, values, strict=False)}


def canonical_bytes(values: Sequence[Any] | Mapping[str, Any]) -> bytes:
    """The canonical encoding of a stored event (see the module's docstring)."""
    if not isinstance(values, Mapping) and len(values) < len(RECORD_FIELDS):
        raise ValueError(f"a record has {len(RECORD_FIELDS)} fields, got {len(values)}")
    return orjson.dumps(canonical(values))


def record_hash(values: Sequence[Any] | Mapping[str, Any]) -> str:
    """sha256 of the canonical bytes, hex."""
    return hashlib.sha256(canonical_bytes(values)).hexdigest()


def select_expression(f: RecordField) -> str:
    """How a read-only query returns ``f`` in a form ``canonical`` takes exactly (JSON-safe
    through the sink's query server)."""
    column = f"`{f.name}`"
    if f.kind == "uuid":
        return f"toString({column})"
    if f.kind == "uuid?":
        return f"if(isNull({column}), '', toString({column}))"
    if f.kind == "time":
        return f"toUnixTimestamp64Milli({column})"
    return column


def chain_day(occurred_at: Any) -> str:
    """The UTC day of ``occurred_at`` (``YYYY-MM-DD``): part of the chain's identity."""
    if isinstance(occurred_at, datetime):
        return _utc(occurred_at).date().isoformat()
    return _time(occurred_at)[:10]
