"""Mass actions: at least N actions of a kind by one actor within a sliding window.

One mechanism, four rules: mass deletion, mass export (exfiltration), mass permission
changes, and a surge of invitations. Bulk work that is expected (an admin's planned cleanup
in working hours, a retention job run by a system actor) is configured as allowed.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import Field, field_validator

from auditstream.detectors.base import Detector, DetectorSettings, Finding
from auditstream.detectors.timeutil import from_millis, local_time, millis, parse_hours, within
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import Observation, Severity
from auditstream.schemas.event import AuditEvent, Outcome


class MassActionSettings(DetectorSettings):
    threshold: int = Field(default=25, ge=2, description="Actions within the window that alert")
    window_minutes: float = Field(default=10.0, gt=0)
    per_resource_type: bool = Field(
        default=False, description="Count each resource type separately"
    )
    thresholds_by_resource_type: dict[str, int] = Field(
        default_factory=dict, description="Thresholds for some resource types (implies per type)"
    )
    allowed_actors: list[str] = Field(
        default_factory=list, description="Actors whose bulk work is expected"
    )
    allowed_actor_types: list[str] = Field(
        default_factory=list, description="Actor types whose bulk work is expected, e.g. system"
    )
    allowed_hours: str | None = Field(
        default=None,
        description="With allowed_actors: only bulk work in these local hours is expected",
    )

    @field_validator("allowed_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hours(value)
        return value


class MassActionDetector(Detector[MassActionSettings]):
    settings = MassActionSettings
    actions: ClassVar[frozenset[Action]]
    severity: ClassVar[Severity] = Severity.HIGH
    noun: ClassVar[str]

    def wants(self, event: AuditEvent) -> bool:
        return event.action in self.actions and event.outcome is Outcome.SUCCESS

    def _allowed(self, event: AuditEvent, settings: MassActionSettings) -> bool:
        if event.actor.type.value in settings.allowed_actor_types:
            return True
        if event.actor.id not in settings.allowed_actors:
            return False
        if settings.allowed_hours is None:
            return True
        local = local_time(event, settings.timezone)
        return within(local.time(), parse_hours(settings.allowed_hours))

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: MassActionSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        if self._allowed(event, settings):
            return []
        rtype = event.resource.type
        split = settings.per_resource_type or bool(settings.thresholds_by_resource_type)
        bucket = rtype if split else "*"
        threshold = settings.thresholds_by_resource_type.get(rtype, settings.threshold)
        now = millis(event.occurred_at)
        horizon = now - int(settings.window_minutes * 60_000)
        windows: dict[str, list[list[Any]]] = state.setdefault("w", {})
        seen = [e for e in windows.get(bucket, []) if e[0] > horizon]
        seen.append([now, str(event.event_id)])
        seen = seen[-threshold:]
        # Forget other buckets' stale entries so state stays bounded.
        for key in [
            k for k, v in windows.items() if k != bucket and (not v or v[-1][0] <= horizon)
        ]:
            del windows[key]
        if len(seen) < threshold:
            windows[bucket] = seen
            return []
        windows[bucket] = []
        what = f"{rtype} " if split else ""
        who = event.actor.display_name or event.actor.id
        start = from_millis(seen[0][0])
        minutes = (now - seen[0][0]) / 60_000
        return [
            Finding(
                severity=self.severity,
                title=f"{len(seen)} {what}{self.noun} by {who} in {minutes:.1f} min",
                explanation=(
                    f"{event.actor.id} made {len(seen)} {what}{self.noun} within "
                    f"{settings.window_minutes:g} minutes; the alert threshold is {threshold}."
                ),
                window_start=start,
                window_end=event.occurred_at,
                evidence=[_uuid(e[1]) for e in seen],
                observations=[
                    Observation(
                        metric=f"{self.name}_count",
                        observed=len(seen),
                        baseline=threshold,
                        unit=f"per {settings.window_minutes:g} min",
                    )
                ],
            )
        ]


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


class MassDeletion(MassActionDetector):
    name = "mass_deletion"
    actions = frozenset({Action.DELETE})
    noun = "deletions"
    mitre = ("T1485", "Data Destruction")


class MassExport(MassActionDetector):
    name = "mass_export"
    actions = frozenset({Action.EXPORT})
    noun = "exports"
    mitre = ("T1567", "Exfiltration Over Web Service")


class MassPermissionChange(MassActionDetector):
    name = "mass_permission_change"
    actions = frozenset({Action.PERMISSION_CHANGE, Action.ROLE_CHANGE})
    noun = "permission changes"
    mitre = ("T1098", "Account Manipulation")


class InvitationSurge(MassActionDetector):
    name = "invitation_surge"
    actions = frozenset({Action.INVITE})
    noun = "invitations"
    severity = Severity.MEDIUM
    mitre = ("T1136", "Create Account")
