"""A consumed message -> one row of its table, column by column.

``to_row``: a normalized event -> ``audit_events``; ``alert_to_row``: an alert ->
``security_alerts``; ``dead_letter_row`` / ``repeat_row``: the accounting records
(docs/decisions/0001-accounting-contract.md) -> ``audit_dead_letters`` / ``audit_repeats``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from auditstream.sinks.tables import (
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_PAYLOAD_BYTES,
    EVENT_COLUMN_NAMES,
    NO_RAW_OFFSET,
    NO_RAW_PARTITION,
    REPEAT_COLUMNS,
)

SOURCE_TOPIC = "auditstream.source.topic"
SOURCE_PARTITION = "auditstream.source.partition"
SOURCE_OFFSET = "auditstream.source.offset"
"""Where the normalizer read a message from the raw topic (ASCII decimal)."""
DLQ = "auditstream.dlq."
ORIGINAL_SIZE = DLQ + "original_size"
ORIGINAL_SHA256 = DLQ + "original_sha256"
"""On a dead letter whose payload the normalizer truncated: the original's size / sha256."""


class UnstorableEvent(ValueError):
    """A message on the normalized topic that is not a normalized event."""


@dataclass(frozen=True)
class Record:
    """A consumed message, as the row builders see it."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)


def header_map(headers: Iterable[tuple[str, str | bytes | None]] | None) -> dict[str, bytes]:
    """Message headers as a dict (the last value of a repeated key wins)."""
    out: dict[str, bytes] = {}
    for key, value in headers or ():
        if value is not None:
            out[key] = value.encode() if isinstance(value, str) else bytes(value)
    return out


def _header_int(headers: Mapping[str, bytes], name: str, maximum: int) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if 0 <= value < maximum else None


def _header_text(headers: Mapping[str, bytes], name: str) -> str:
    return headers.get(name, b"").decode(errors="replace")


def raw_position(headers: Mapping[str, bytes] | None) -> tuple[int, int] | None:
    """(partition, offset) on the raw topic from the source headers; None if absent/bad."""
    if not headers:
        return None
    partition = _header_int(headers, SOURCE_PARTITION, NO_RAW_PARTITION)
    offset = _header_int(headers, SOURCE_OFFSET, NO_RAW_OFFSET)
    if partition is None or offset is None:
        return None
    return partition, offset


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def to_row(
    value: bytes, partition: int, offset: int, headers: Mapping[str, bytes] | None = None
) -> tuple[Any, ...]:
    """Column values in ``EVENT_COLUMN_NAMES`` order (no source headers: the raw position
    is ``NO_RAW_PARTITION`` / ``NO_RAW_OFFSET``; the row is still stored)."""
    raw = raw_position(headers) or (NO_RAW_PARTITION, NO_RAW_OFFSET)
    try:
        e = orjson.loads(value)
        actor = e["actor"]
        resource = e["resource"]
        loc = e.get("location") or {}
        changes = e.get("changes") or []
        parent = e.get("parent_event_id")
        return (
            uuid.UUID(e["event_id"]),
            e.get("schema_version", 1),
            e["tenant_id"],
            _ts(e["occurred_at"]),
            _ts(e["received_at"]),
            actor["id"],
            actor.get("type", "member"),
            actor.get("display_name") or "",
            actor.get("email") or "",
            actor.get("timezone") or "",
            e["action"],
            resource["type"],
            resource["id"],
            resource.get("name") or "",
            e.get("outcome", "success"),
            e.get("ip") or "",
            e.get("session_id") or "",
            e.get("user_agent") or "",
            e.get("channel", "other"),
            loc.get("country") or "",
            loc.get("region") or "",
            loc.get("city") or "",
            loc.get("latitude"),
            loc.get("longitude"),
            [c["field"] for c in changes],
            [_json(c.get("old")) for c in changes],
            [_json(c.get("new")) for c in changes],
            e.get("correlation_id") or "",
            uuid.UUID(parent) if parent else None,
            _json(e.get("metadata") or {}),
            partition,
            offset,
            raw[0],
            raw[1],
            0,  # chain_seq, chain_prev, record_hash: set by the writer (integrity/chain.py)
            "",
            "",
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnstorableEvent(f"{type(exc).__name__}: {exc}") from exc


assert len(EVENT_COLUMN_NAMES) == 37  # keep to_row and the table in step


def alert_to_row(value: bytes, partition: int, offset: int) -> tuple[Any, ...]:
    """An alert (JSON bytes) in ``ALERT_COLUMN_NAMES`` order."""
    try:
        a = orjson.loads(value)
        obs = a.get("observations") or []
        return (
            uuid.UUID(a["alert_id"]),
            a.get("schema_version", 1),
            a["rule"],
            a["severity"],
            a["tenant_id"],
            a.get("actor_id") or "",
            a["subject"],
            a["title"],
            a["explanation"],
            [o["metric"] for o in obs],
            [float(o["observed"]) for o in obs],
            [None if o.get("baseline") is None else float(o["baseline"]) for o in obs],
            [o.get("unit") or "" for o in obs],
            _ts(a["window_start"]),
            _ts(a["window_end"]),
            _ts(a["first_seen"]),
            _ts(a["last_seen"]),
            _ts(a["detected_at"]),
            [uuid.UUID(e) for e in a.get("evidence_event_ids") or []],
            a["mitre_technique"],
            a.get("mitre_name") or "",
            _json(a.get("context") or {}),
            partition,
            offset,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnstorableEvent(f"{type(exc).__name__}: {exc}") from exc


def event_row(record: Record) -> tuple[Any, ...]:
    return to_row(record.value, record.partition, record.offset, record.headers)


def alert_row(record: Record) -> tuple[Any, ...]:
    return alert_to_row(record.value, record.partition, record.offset)


def _parse_time(text: str, default: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return default
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def dead_letter_row(record: Record, now: datetime | None = None) -> tuple[Any, ...]:
    """A dead letter in ``DEAD_LETTER_COLUMNS`` order. Never refuses: a dead letter is
    recorded whatever it carries (a missing header is 0 / '' / the time it was read)."""
    h = record.headers
    now = now or datetime.now(UTC)
    failed_topic = _header_text(h, DLQ + "topic")
    failed_partition = _header_int(h, DLQ + "partition", NO_RAW_PARTITION)
    failed_offset = _header_int(h, DLQ + "offset", NO_RAW_OFFSET)
    raw = raw_position(h)
    if raw is not None and SOURCE_TOPIC in h:
        source = (_header_text(h, SOURCE_TOPIC), raw[0], raw[1])
    else:
        source = (
            failed_topic,
            NO_RAW_PARTITION if failed_partition is None else failed_partition,
            NO_RAW_OFFSET if failed_offset is None else failed_offset,
        )
    value = record.value
    return (
        *source,
        _header_text(h, DLQ + "reason") or "unknown",
        _header_text(h, DLQ + "detail"),
        _parse_time(_header_text(h, DLQ + "failed_at"), now),
        failed_topic,
        NO_RAW_PARTITION if failed_partition is None else failed_partition,
        NO_RAW_OFFSET if failed_offset is None else failed_offset,
        record.key or b"",
        value[:DEAD_LETTER_PAYLOAD_BYTES],
        len(value),
        hashlib.sha256(value).hexdigest(),
        len(value) > DEAD_LETTER_PAYLOAD_BYTES,
        _header_int(h, ORIGINAL_SIZE, NO_RAW_OFFSET) or 0,
        _header_text(h, ORIGINAL_SHA256)[:64],
        record.partition,
        record.offset,
    )


assert len(DEAD_LETTER_COLUMNS) == 18  # keep dead_letter_row and the table in step


def repeat_row(record: Record) -> tuple[Any, ...]:
    """A repeat record (JSON, ``Topics.repeats``) in ``REPEAT_COLUMNS`` order."""
    try:
        r = orjson.loads(record.value)
        partition, offset = int(r["source_partition"]), int(r["source_offset"])
        if not (0 <= partition < NO_RAW_PARTITION and 0 <= offset < NO_RAW_OFFSET):
            raise ValueError(f"source position {partition}/{offset} out of range")
        return (
            str(r["source_topic"]),
            partition,
            offset,
            str(r["tenant_id"]),
            uuid.UUID(r["event_id"]),
            str(r.get("stage") or "normalizer"),
            _parse_time(str(r["recorded_at"]), datetime.now(UTC)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnstorableEvent(f"{type(exc).__name__}: {exc}") from exc


assert len(REPEAT_COLUMNS) == 7  # keep repeat_row and the table in step
