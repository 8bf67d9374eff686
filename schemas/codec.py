"""Bytes on the wire <-> ``AuditEvent``, with errors a producer can act on."""

from __future__ import annotations

from pydantic import ValidationError

from auditstream.schemas.event import AuditEvent


class EventTooLarge(ValueError):
    """The serialized event is over the configured limit."""


def encode(event: AuditEvent) -> bytes:
    """Compact JSON, no ``null`` fields, timestamps as ``...T01:02:03.456Z``."""
    return event.model_dump_json(exclude_none=True).encode()


def decode(raw: bytes) -> AuditEvent:
    """Parse and validate one event. Raises ``pydantic.ValidationError``."""
    return AuditEvent.model_validate_json(raw)


def describe(error: ValidationError) -> str:
    """One line per problem, naming the field: ``actor.id: Field required``."""
    parts = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"]) or "event"
        msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
