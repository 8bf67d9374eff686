"""Detectors over stored history: what they would have raised (``auditstream backtest``).

The events stored in ClickHouse (``audit_events``, ``FINAL`` so each counts once) are read in
event-time order, a page at a time (keyset on ``occurred_at, event_id``: memory stays
bounded whatever the range), turned back into ``AuditEvent``s and given to the same engine,
detectors and per-tenant settings as the worker, with state per subject and tenant-wide state
per partition, as the worker keeps it. Nothing is published: the alerts are returned.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from auditstream.detectors.base import Scope
from auditstream.detectors.engine import DetectionEngine
from auditstream.schemas.alert import Alert
from auditstream.schemas.event import AuditEvent, partition_key

Query = Callable[[str], Sequence[Sequence[Any]]]
PAGE = 20_000

COLUMNS = (
    "event_id",
    "tenant_id",
    "toUnixTimestamp64Milli(occurred_at)",
    "actor_id",
    "actor_type",
    "actor_display_name",
    "actor_email",
    "actor_timezone",
    "action",
    "resource_type",
    "resource_id",
    "resource_name",
    "outcome",
    "ip",
    "session_id",
    "user_agent",
    "channel",
    "country",
    "region",
    "city",
    "latitude",
    "longitude",
    "changes.field",
    "changes.old",
    "changes.new",
    "correlation_id",
    "parent_event_id",
    "metadata",
)


def _time(value: datetime) -> str:
    stamp = (
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    )
    return f"toDateTime64('{stamp}', 3, 'UTC')"


def page_sql(
    start: datetime, end: datetime, after: tuple[int, str] | None, page: int = PAGE
) -> str:
    """The next ``page`` stored events in ``[start, end)`` after ``after`` (ms, event id)."""
    where = [f"occurred_at >= {_time(start)}", f"occurred_at < {_time(end)}"]
    if after is not None:
        ms, event_id = after
        uuid.UUID(event_id)  # only a UUID goes into the statement
        where.append(
            f"(toUnixTimestamp64Milli(occurred_at), event_id) > ({int(ms)}, toUUID('{event_id}'))"
        )
    return (
        f"SELECT {', '.join(COLUMNS)} FROM audit_events FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY occurred_at, event_id LIMIT {int(page)}"
    )


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def event_from_row(row: Sequence[Any]) -> AuditEvent:
    """A ``page_sql`` row back into the event the sink stored (empty strings are absent)."""
    v = dict(zip(COLUMNS, row, strict=True))

    def opt(key: str) -> Any:
        return v[key] if v[key] not in ("", None) else None

    location = None
    if opt("country") or opt("city") or v["latitude"] is not None:
        location = {
            "country": opt("country"),
            "region": opt("region"),
            "city": opt("city"),
            "latitude": v["latitude"],
            "longitude": v["longitude"],
        }
    changes = [
        {"field": f, "old": _json(o), "new": _json(n)}
        for f, o, n in zip(v["changes.field"], v["changes.old"], v["changes.new"], strict=False)
    ]
    return AuditEvent.model_validate(
        {
            "event_id": str(v["event_id"]),
            "occurred_at": datetime.fromtimestamp(
                int(v["toUnixTimestamp64Milli(occurred_at)"]) / 1000, tz=UTC
            ),
            "tenant_id": v["tenant_id"],
            "actor": {
                "id": v["actor_id"],
                "type": opt("actor_type") or "member",
                "display_name": opt("actor_display_name"),
                "email": opt("actor_email"),
                "timezone": opt("actor_timezone"),
            },
            "action": v["action"],
            "resource": {
                "type": v["resource_type"],
                "id": v["resource_id"],
                "name": opt("resource_name"),
            },
            "outcome": v["outcome"],
            "ip": opt("ip"),
            "session_id": opt("session_id"),
            "user_agent": opt("user_agent"),
            "channel": opt("channel") or "other",
            "location": location,
            "changes": changes,
            "correlation_id": opt("correlation_id"),
            "parent_event_id": str(v["parent_event_id"]) if v["parent_event_id"] else None,
            "metadata": _json(v["metadata"]) if v["metadata"] else {},
        }
    )


def stored_events(
    query: Query, start: datetime, end: datetime, page: int = PAGE
) -> Iterator[AuditEvent]:
    after: tuple[int, str] | None = None
    while True:
        rows = query(page_sql(start, end, after, page))
        for row in rows:
            yield event_from_row(row)
        if len(rows) < page:
            return
        last = rows[-1]
        after = (int(last[2]), str(last[0]))


def partition_of(tenant_id: str, actor_id: str, partitions: int) -> int:
    """The normalized topic's partition of an actor (murmur2 of ``tenant:actor``, as Kafka's
    Java client and aiokafka): where the worker keeps its tenant-wide state."""
    return (int(murmur2(partition_key(tenant_id, actor_id))) & 0x7FFFFFFF) % partitions


class InProcess:
    """The worker's detection in this process: per-subject state for each scope, tenant-wide
    state per partition of the normalized topic, as the worker keeps them (for backtests and
    the in-process eval)."""

    def __init__(self, engine: DetectionEngine, partitions: int = 6) -> None:
        self._engine = engine
        self._partitions = partitions
        self._states: dict[tuple[Scope, str, str], dict[str, Any]] = {}
        self._shared: dict[tuple[Scope, str, int], dict[str, Any]] = {}

    def process(self, event: AuditEvent) -> Iterator[Alert]:
        engine = self._engine
        part = partition_of(event.tenant_id, event.actor.id, self._partitions)
        for scope in Scope:
            if not engine.has(scope) or not engine.wants(event, scope):
                continue
            subject = event.actor.id if scope is Scope.ACTOR else event.ip
            if subject is None:
                continue
            state = self._states.setdefault((scope, event.tenant_id, subject), {})
            shared = self._shared.setdefault((scope, event.tenant_id, part), {})
            yield from engine.process(event, state, scope, shared)


@dataclass
class Backtest:
    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    by_rule: dict[str, int] = field(default_factory=dict)


def run(
    engine: DetectionEngine,
    events: Iterator[AuditEvent],
    rules: Sequence[str] = (),
    partitions: int = 6,
) -> Backtest:
    """The alerts ``engine`` raises over ``events`` (in their order); only ``rules`` if given.
    Repeats of one incident (the same alert id re-sent as it grew) are kept once, the last."""
    detection = InProcess(engine, partitions)
    latest: dict[uuid.UUID, Alert] = {}
    out = Backtest()
    for event in events:
        out.events += 1
        for alert in detection.process(event):
            if not rules or alert.rule in rules:
                latest[alert.alert_id] = alert
    out.alerts = sorted(latest.values(), key=lambda a: (a.window_start, a.rule))
    for alert in out.alerts:
        out.by_rule[alert.rule] = out.by_rule.get(alert.rule, 0) + 1
    return out
