"""Event schema v1: the contract between producers, stream jobs and storage."""

from auditstream.schemas.actions import Action, canonical_action
from auditstream.schemas.event import (
    Actor,
    ActorType,
    AuditEvent,
    Channel,
    FieldChange,
    Location,
    Outcome,
    Resource,
    partition_key,
)
from auditstream.schemas.ids import uuid7

__all__ = [
    "Action",
    "Actor",
    "ActorType",
    "AuditEvent",
    "Channel",
    "FieldChange",
    "Location",
    "Outcome",
    "Resource",
    "canonical_action",
    "partition_key",
    "uuid7",
]
