"""A normalized event (JSON bytes) -> one row of ``audit_events``, column by column."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from auditstream.sinks.tables import EVENT_COLUMN_NAMES


class UnstorableEvent(ValueError):
    """A message on the normalized topic that is not a normalized event."""


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def to_row(value: bytes, partition: int, offset: int) -> tuple[Any, ...]:
    """Column values in ``EVENT_COLUMN_NAMES`` order."""
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
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnstorableEvent(f"{type(exc).__name__}: {exc}") from exc


assert len(EVENT_COLUMN_NAMES) == 32  # keep to_row and the table in step


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
