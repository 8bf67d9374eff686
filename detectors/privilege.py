"""Privilege changes: grants of admin / owner rights, and first-ever settings changes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from auditstream.detectors.base import Detector, DetectorSettings, Finding
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import Observation, Severity
from auditstream.schemas.event import AuditEvent, Outcome


class EscalationSettings(DetectorSettings):
    privileged: list[str] = Field(
        default_factory=lambda: ["admin", "owner", "superuser", "root", "super_admin"],
        description="Role or permission names that grant full control (matched as words)",
    )


def _grants(value: Any, names: list[str]) -> str | None:
    """The privileged name ``value`` mentions, if any (strings, lists, dicts)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = list(value.values()) + list(value.keys())
    if isinstance(value, list):
        for item in value:
            hit = _grants(item, names)
            if hit:
                return hit
        return None
    words = str(value).lower().replace("-", "_").replace(" ", "_").split("_")
    text = str(value).lower()
    for name in names:
        if name in words or text == name:
            return name
    return None


class PrivilegeEscalation(Detector[EscalationSettings]):
    name = "privilege_escalation"
    settings = EscalationSettings
    mitre = ("T1098.003", "Account Manipulation: Additional Cloud Roles")

    def wants(self, event: AuditEvent) -> bool:
        return (
            event.action in (Action.ROLE_CHANGE, Action.PERMISSION_CHANGE)
            and event.outcome is Outcome.SUCCESS
        )

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: EscalationSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        for change in event.changes:
            granted = _grants(change.new, settings.privileged)
            if granted and not _grants(change.old, settings.privileged):
                target = event.resource.name or event.resource.id
                return [
                    Finding(
                        severity=Severity.HIGH,
                        title=f"{event.actor.id} granted {granted} rights to {target}",
                        explanation=(
                            f"{event.action.value} on {event.resource.type} {event.resource.id}: "
                            f"{change.field} changed from {change.old!r} to {change.new!r}, "
                            f"which grants '{granted}'."
                        ),
                        window_start=event.occurred_at,
                        window_end=event.occurred_at,
                        evidence=[event.event_id],
                    )
                ]
        return []


class FirstSettingsSettings(DetectorSettings):
    min_history: int = Field(
        default=30, ge=1, description="Events seen from the actor before a first change is odd"
    )


class FirstSettingsChange(Detector[FirstSettingsSettings]):
    """Settings changed by an actor with a history, who never changed settings before."""

    name = "first_settings_change"
    settings = FirstSettingsSettings
    mitre = ("T1562", "Impair Defenses")

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: FirstSettingsSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        seen = state.get("n", 0)
        changed_before = state.get("s", 0)
        state["n"] = seen + 1
        if event.action is not Action.SETTINGS_CHANGE or event.outcome is not Outcome.SUCCESS:
            return []
        state["s"] = changed_before + 1
        if changed_before or seen < settings.min_history:
            return []
        fields = ", ".join(c.field for c in event.changes) or event.resource.id
        return [
            Finding(
                severity=Severity.MEDIUM,
                title=f"First settings change by {event.actor.id}: {fields}",
                explanation=(
                    f"{event.actor.id} changed settings ({fields}) for the first time after "
                    f"{seen} other actions."
                ),
                window_start=event.occurred_at,
                window_end=event.occurred_at,
                evidence=[event.event_id],
                observations=[
                    Observation(metric="settings_changes_before", observed=0, baseline=None),
                    Observation(metric="actions_before", observed=seen),
                ],
            )
        ]
