"""Simulated events: the SDK's keyword fields, when they happen, and whose scenario they are."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditstream.simulation.org import Place, User
from auditstream.simulation.timeline import sim_uuid

SIGN_IN_ACTIONS = frozenset({"sign_in", "sign_in_failed", "sign_out"})


@dataclass(frozen=True, slots=True)
class SimEvent:
    at: datetime
    fields: dict[str, Any]
    """Keyword fields for ``AuditProducer.emit(**fields)``."""
    scenario: str | None = None
    """The scenario (label id) this event belongs to; None for background work."""

    @property
    def event_id(self) -> str:
        return str(self.fields["event_id"])

    @property
    def tenant_id(self) -> str:
        return str(self.fields["tenant_id"])

    @property
    def actor_id(self) -> str:
        return str(self.fields["actor"]["id"])

    @property
    def action(self) -> str:
        return str(self.fields["action"])


@dataclass(frozen=True, slots=True)
class Session:
    """Where a signed-in user works from: their address, device and channel there."""

    id: str
    place: Place


class EventFactory:
    """Builds the fields of one event; ids come from ``rng`` so a seed reproduces them."""

    def __init__(self, rng: random.Random, run_tag: str | None = None) -> None:
        self.rng = rng
        self.run_tag = run_tag

    def session(self, user: User, place: Place, at: datetime) -> Session:
        return Session(
            f"ses_{user.id[4:]}_{int(at.timestamp())}_{self.rng.getrandbits(16):04x}", place
        )

    def correlation(self) -> str:
        return f"req_{self.rng.getrandbits(64):016x}"

    def make(
        self,
        user: User | dict[str, Any],
        action: str,
        at: datetime,
        resource: dict[str, Any],
        session: Session,
        *,
        tenant_id: str | None = None,
        changes: list[dict[str, Any]] | None = None,
        outcome: str = "success",
        correlation_id: str | None = None,
        parent: uuid.UUID | None = None,
        metadata: dict[str, Any] | None = None,
        scenario: str | None = None,
    ) -> SimEvent:
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # what the pipeline keeps
        actor = user.actor if isinstance(user, User) else user
        tenant = tenant_id or (user.tenant_id if isinstance(user, User) else None)
        if tenant is None:
            raise ValueError("tenant_id is needed for an actor given as a dict")
        place = session.place
        fields: dict[str, Any] = {
            "event_id": sim_uuid(at, self.rng),
            "occurred_at": at,
            "tenant_id": tenant,
            "actor": actor,
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "ip": place.ip,
            "user_agent": place.user_agent,
            "channel": place.channel,
            "session_id": session.id,
        }
        if action in SIGN_IN_ACTIONS:
            fields["location"] = place.location
        if changes:
            fields["changes"] = changes
        if correlation_id is not None:
            fields["correlation_id"] = correlation_id
        if parent is not None:
            fields["parent_event_id"] = parent
        meta = dict(metadata or {})
        if self.run_tag:
            meta["sim_run"] = self.run_tag
        if meta:
            fields["metadata"] = meta
        return SimEvent(at, fields, scenario)


def change(field: str, old: Any, new: Any) -> dict[str, Any]:
    return {"field": field, "old": old, "new": new}
