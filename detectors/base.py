"""The detector contract. Every detector is a small unit with one job; this docstring is its
whole contract, so implementations stay short.

A detector
- has a ``name`` (the alert rule id, e.g. ``"mass_deletion"``), a ``scope`` saying whose
  state it keeps (``Scope.ACTOR``: one tenant + actor; ``Scope.IP``: one tenant + source IP),
  and a ``settings`` class: a pydantic model of its per-tenant settings with defaults
  (``extra="forbid"``, so a typo in the config file fails at start-up).
- implements ``observe(event, state, settings, tenant) -> list[Finding]``, called once per
  event of its scope, in order per key. It must be:
  * **pure**: no I/O, no clock. Time is the event's ``occurred_at``, so a replay after a
    restart gives the same findings (and the same alert ids);
  * **bounded**: ``state`` is this detector's own JSON-serialisable dict for this key (it is
    kept in a Faust table and its changelog, so it survives a worker restart); keep it small,
    windows trimmed and histograms fixed-size;
  * ``tenant`` is this detector's tenant-wide state *as this partition sees it*: the
    tenant's actors are spread over partitions, so each partition holds a fair sample of
    them, which is what a prior (e.g. the tenant's usual sign-in hours) needs. Same rules;
  * **quiet by default**: return ``[]`` unless the pattern is really there; what is normal for
    this subject belongs in ``state``, and findings carry observed vs. baseline values.
- may implement ``wants(event) -> bool`` to skip events it never looks at (cheap prefilter).

Enablement, per-tenant settings, repeat suppression and alert ids are the engine's job
(``detectors/engine.py``), never the detector's.

A detector whose pattern can go on for hours (a password attack) sets ``incidents = True``
and gives each finding a ``magnitude`` (failures, accounts). The engine then folds every
finding of one rule and subject that continues within ``suppress_minutes`` of the last into
one *incident*: one alert id for all of it (numbered per subject, so it does not depend on
which event arrived first), its window the union of the findings' windows, and the alert
re-sent with the same id only when the magnitude has doubled since it was last sent or the
severity rose. Such a detector computes windows and explanations from the event times of
its evidence, never from the arrival order, so the same events give the same alert.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditstream.schemas.alert import Observation, Severity
from auditstream.schemas.event import AuditEvent


class Scope(StrEnum):
    ACTOR = "actor"
    IP = "ip"


class DetectorSettings(BaseModel):
    """Settings every detector has; subclasses add their own fields with defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    suppress_minutes: float = Field(
        default=60.0, ge=0, description="Repeats for the same subject are not re-sent for this long"
    )
    timezone: str = Field(
        default="UTC", description="The tenant's IANA time zone, for actors without their own"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Berlin')") from None
        return value


S = TypeVar("S", bound=DetectorSettings)


@dataclass(frozen=True)
class Finding:
    """What a detector saw; the engine turns it into an ``Alert``."""

    severity: Severity
    title: str
    explanation: str
    window_start: datetime
    window_end: datetime
    evidence: Sequence[uuid.UUID] = ()
    observations: Sequence[Observation] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    rule: str | None = None
    """Overrides the detector's name, for detectors that emit several rules."""
    mitre: tuple[str, str] | None = None
    """Overrides the detector's (technique id, name)."""
    extra: dict[str, Any] = field(default_factory=dict)
    magnitude: float = 0.0
    """How big it is (failures, accounts): an incident's alert is re-sent when it doubles."""


class Detector(ABC, Generic[S]):
    name: ClassVar[str]
    scope: ClassVar[Scope] = Scope.ACTOR
    settings: ClassVar[type[DetectorSettings]] = DetectorSettings
    mitre: ClassVar[tuple[str, str]]
    """MITRE ATT&CK (technique id, technique name) of what this detector looks for."""
    incidents: ClassVar[bool] = False
    """Findings that continue one another are one alert, updated (module docstring)."""

    def wants(self, event: AuditEvent) -> bool:
        return True

    @abstractmethod
    def observe(
        self, event: AuditEvent, state: dict[str, Any], settings: S, tenant: dict[str, Any]
    ) -> list[Finding]:
        """See the module docstring."""
