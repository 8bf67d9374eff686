"""Alert schema, version 1: what detectors publish to the alert topic and store."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from auditstream.schemas.event import UtcMillis

ALERT_SCHEMA_VERSION: Literal[1] = 1
MAX_EVIDENCE = 50
_NAMESPACE = uuid.UUID("6f1c9a52-5d2e-4b7e-9a51-2f0c0d3e7a11")


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Observation(BaseModel):
    """One measured value next to what is normal for this subject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    observed: float
    baseline: float | None = None
    unit: str = ""


class Alert(BaseModel):
    """A detection, explained: what was seen, against what baseline, over which window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = ALERT_SCHEMA_VERSION
    alert_id: uuid.UUID = Field(description="Stable: the same detection always has the same id")
    rule: str
    severity: Severity
    tenant_id: str
    actor_id: str | None = None
    subject: str = Field(description="Who or what the alert is about: an actor id or an IP")
    title: str
    explanation: str
    observations: list[Observation] = Field(default_factory=list)
    window_start: UtcMillis
    window_end: UtcMillis
    first_seen: UtcMillis
    last_seen: UtcMillis
    evidence_event_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_EVIDENCE)
    mitre_technique: str = Field(description="MITRE ATT&CK technique, e.g. 'T1485'")
    mitre_name: str = ""
    context: dict[str, Any] = Field(
        default_factory=dict, description="Rule-specific details, e.g. the actors an IP sprayed"
    )
    detected_at: UtcMillis


def stable_alert_id(rule: str, tenant_id: str, subject: str, window_start: datetime) -> uuid.UUID:
    """Deterministic from what the alert is about, so a reprocessed event yields the same id."""
    stamp = int(window_start.timestamp() * 1000)
    return uuid.uuid5(_NAMESPACE, f"{rule}\x1f{tenant_id}\x1f{subject}\x1f{stamp}")


def content_alert_id(rule: str, tenant_id: str, subject: str, content: str) -> uuid.UUID:
    """The id of an alert about a state rather than a window (``log_tampering``: the same
    findings found again by the next scheduled verification are the same alert)."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    return uuid.uuid5(_NAMESPACE, f"{rule}\x1f{tenant_id}\x1f{subject}\x1fstate\x1f{digest}")


def incident_alert_id(rule: str, tenant_id: str, subject: str, incident: int) -> uuid.UUID:
    """The id of a subject's ``incident``-th incident of ``rule`` (``detectors/base.py``): it
    names the incident, not its first event, so events arriving in another order (within the
    allowed lateness) give the same id."""
    return uuid.uuid5(_NAMESPACE, f"{rule}\x1f{tenant_id}\x1f{subject}\x1fincident\x1f{incident}")
