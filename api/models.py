"""Typed responses of the API (pydantic): what the OpenAPI schema and a viewer see."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from auditstream.api.query import EventRow, from_ms
from auditstream.schemas.event import UtcMillis


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorBody(_Out):
    code: Literal[
        "unauthorized", "forbidden", "bad_request", "not_found", "too_large", "unavailable"
    ]
    message: str
    missing_permission: str | None = Field(
        default=None, description="On 403: the scope the token lacks"
    )


class ErrorResponse(_Out):
    error: ErrorBody


class Change(_Out):
    field: str
    old: Any = Field(description="The value before (any JSON value; null when absent)")
    new: Any = Field(description="The value after")


class ActorOut(_Out):
    id: str
    type: str
    display_name: str
    email: str
    timezone: str


class EntityOut(_Out):
    type: str
    id: str
    name: str


class EventSummary(_Out):
    """One event as a list shows it."""

    event_id: str
    tenant_id: str
    occurred_at: UtcMillis
    received_at: UtcMillis
    action: str
    outcome: str
    actor: ActorOut
    entity: EntityOut
    ip: str
    session_id: str
    channel: str
    changes: list[Change]
    correlation_id: str
    parent_event_id: str | None

    @classmethod
    def of(cls, row: EventRow) -> EventSummary:
        v = row.values
        return cls(
            event_id=row.event_id,
            tenant_id=str(v["tenant_id"]),
            occurred_at=row.occurred_at,
            received_at=from_ms(int(v["received_ms"])),
            action=str(v["action"]),
            outcome=str(v["outcome"]),
            actor=ActorOut(
                id=str(v["actor_id"]),
                type=str(v["actor_type"]),
                display_name=str(v["actor_display_name"]),
                email=str(v["actor_email"]),
                timezone=str(v["actor_timezone"]),
            ),
            entity=EntityOut(
                type=str(v["resource_type"]), id=str(v["resource_id"]), name=str(v["resource_name"])
            ),
            ip=str(v["ip"]),
            session_id=str(v["session_id"]),
            channel=str(v["channel"]),
            changes=[Change(**c) for c in row.changes],
            correlation_id=str(v["correlation_id"]),
            parent_event_id=str(v["parent_event_id"]) or None,
        )


class EventPage(_Out):
    data: list[EventSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters and sort) for the next page"
    )
    range_from: UtcMillis
    range_to: UtcMillis


# -- the four cards ---------------------------------------------------------------------------
class ActionCard(_Out):
    action: str
    outcome: str
    occurred_at: UtcMillis
    received_at: UtcMillis
    channel: str


class LocationOut(_Out):
    country: str
    region: str
    city: str
    latitude: float | None
    longitude: float | None


class ActorCard(_Out):
    id: str
    type: str
    display_name: str
    email: str
    timezone: str
    ip: str
    session_id: str
    user_agent: str
    location: LocationOut


class DetailsCard(_Out):
    changes: list[Change] = Field(description="Each field's old -> new value")
    metadata: dict[str, Any]


class EventDetail(_Out):
    event_id: str
    tenant_id: str
    action: ActionCard
    actor: ActorCard
    entity: EntityOut
    details: DetailsCard
    correlation_id: str
    parent: EventSummary | None = Field(description="The event that caused this one")
    children: list[EventSummary] = Field(description="Events this one caused (cascade)")
    related: list[EventSummary] = Field(
        description="Other events of the same cascade or request (same correlation id)"
    )

    @classmethod
    def of(
        cls,
        row: EventRow,
        parent: EventRow | None,
        children: list[EventRow],
        related: list[EventRow],
    ) -> EventDetail:
        s = EventSummary.of(row)
        v = row.values
        return cls(
            event_id=s.event_id,
            tenant_id=s.tenant_id,
            action=ActionCard(
                action=s.action,
                outcome=s.outcome,
                occurred_at=s.occurred_at,
                received_at=s.received_at,
                channel=s.channel,
            ),
            actor=ActorCard(
                **s.actor.model_dump(),
                ip=s.ip,
                session_id=s.session_id,
                user_agent=str(v["user_agent"]),
                location=LocationOut(
                    country=str(v["country"]),
                    region=str(v["region"]),
                    city=str(v["city"]),
                    latitude=v["latitude"],
                    longitude=v["longitude"],
                ),
            ),
            entity=s.entity,
            details=DetailsCard(changes=s.changes, metadata=row.metadata()),
            correlation_id=s.correlation_id,
            parent=None if parent is None else EventSummary.of(parent),
            children=[EventSummary.of(c) for c in children],
            related=[EventSummary.of(r) for r in related if r.event_id != row.event_id],
        )


class TimelineEntry(_Out):
    event: EventSummary
    cascade: bool = Field(description="Part of a cascade (has a parent or a correlation id)")


class Timeline(_Out):
    entity: EntityOut
    data: list[TimelineEntry] = Field(description="Oldest first")
    next_cursor: str | None


# -- analytics ------------------------------------------------------------------------------
class CountItem(_Out):
    key: str
    label: str = Field(description="For actors: the display name")
    kind: str = Field(description="For actors: the actor type")
    count: int


class Counts(_Out):
    dimension: str
    range_from: UtcMillis
    range_to: UtcMillis
    total: int = Field(description="Events matching the filters")
    data: list[CountItem]


class Summary(_Out):
    range_from: UtcMillis
    range_to: UtcMillis
    events: int
    unique_entities: int
    unique_actors: int


class TrendPoint(_Out):
    start: UtcMillis
    count: int


class Trend(_Out):
    interval: str
    range_from: UtcMillis
    range_to: UtcMillis
    data: list[TrendPoint]


# -- exports --------------------------------------------------------------------------------
class ExportJob(_Out):
    id: str
    format: str
    status: Literal["running", "done", "failed"]
    rows_total: int
    rows_written: int
    progress: float = Field(description="0 .. 1")
    created_at: UtcMillis
    finished_at: UtcMillis | None
    error: str | None
    download_url: str | None


class TokenInfo(_Out):
    id: str
    tenant: str
    role: str
    scopes: list[str]
    expires_at: str | None


class ViewerToken(_Out):
    token: str = Field(description="`Authorization: Bearer <token>` until `expires_at`")
    tenant: str
    scopes: list[str]
    expires_at: UtcMillis


class Retention(_Out):
    days: int | None = Field(description="How long events are kept (the store's TTL)")
    oldest_kept: UtcMillis | None = Field(
        description="Events older than this are deleted (within hours: TTL runs at merges)"
    )
    per_tenant: bool = Field(
        default=False, description="Per-tenant overrides: not available yet (one retention)"
    )
