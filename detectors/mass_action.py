"""Mass actions: at least N actions of a kind by one actor within a sliding window.

One mechanism, four rules: mass deletion, mass export (exfiltration), mass permission
changes, and a surge of invitations. Bulk work that is expected (an admin's planned cleanup
in working hours, a retention job run by a system actor) is configured as allowed.

What is counted is **requests**, not events: the events of one request share a
``correlation_id`` (or name their cause in ``parent_event_id``), so deleting a project that
deletes its 25 tasks is one deletion, and one "delete selected" of 40 items is one request.
An event with neither is a request of its own (what every event was before). Two ways to
alert:

- at least ``threshold`` requests within the window (a script deleting one item per call);
- at least ``bulk_requests`` requests that together touch at least ``bulk_items`` items (by
  default four times the threshold) within the window: many requests each deleting a lot.
"""

from __future__ import annotations

import bisect
import uuid
from typing import Any, ClassVar

from pydantic import Field, field_validator

from auditstream.detectors.base import Detector, DetectorSettings, Finding
from auditstream.detectors.timeutil import from_millis, local_time, millis, parse_hours, within
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import MAX_EVIDENCE, Observation, Severity
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
    bulk_requests: int = Field(
        default=3, ge=2, description="Requests that, touching bulk_items together, alert"
    )
    bulk_items: int | None = Field(
        default=None, ge=2, description="Items of bulk_requests requests that alert (4 x threshold)"
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
        window = int(settings.window_minutes * 60_000)
        windows: dict[str, list[list[Any]]] = state.setdefault("w", {})
        # [millis, event id, request], sorted by time; trimmed to the window of the newest.
        bulk_items = settings.bulk_items or 4 * threshold
        seen = windows.get(bucket, [])
        bisect.insort(seen, [now, str(event.event_id), request_of(event)])
        newest = seen[-1][0]
        seen = [e for e in seen if e[0] > newest - window][-max(MAX_ITEMS, bulk_items) :]
        # Forget other buckets' stale entries so state stays bounded.
        for key in [
            k for k, v in windows.items() if k != bucket and (not v or v[-1][0] <= newest - window)
        ]:
            del windows[key]
        hit = _crossing(seen, window, threshold, settings.bulk_requests, bulk_items)
        if hit is None:
            windows[bucket] = seen
            return []
        windows[bucket] = [e for e in seen if e[0] > hit[-1][0]]
        requests = len({e[2] for e in hit})
        what = f"{rtype} " if split else ""
        who = event.actor.display_name or event.actor.id
        first, last = hit[0][0], hit[-1][0]
        minutes = (last - first) / 60_000
        items = f" ({len(hit)} items)" if len(hit) != requests else ""
        reason = (
            f"the alert threshold is {threshold} requests"
            if requests >= threshold
            else f"{requests} requests touching {len(hit)} items reach the bulk threshold "
            f"({settings.bulk_requests} requests, {bulk_items} items)"
        )
        return [
            Finding(
                severity=self.severity,
                title=f"{requests} {what}{self.noun}{items} by {who} in {minutes:.1f} min",
                explanation=(
                    f"{event.actor.id} made {requests} {what}{self.noun}{items} within "
                    f"{settings.window_minutes:g} minutes, counting each request once (its "
                    f"cascade included); {reason}."
                ),
                window_start=from_millis(first),
                window_end=from_millis(last),
                evidence=[_uuid(e[1]) for e in _spread(hit)],
                observations=[
                    Observation(
                        metric=f"{self.name}_count",
                        observed=requests,
                        baseline=threshold,
                        unit=f"requests per {settings.window_minutes:g} min",
                    ),
                    Observation(metric="items", observed=len(hit), baseline=bulk_items),
                ],
            )
        ]


MAX_ITEMS = 500
"""Items kept per window at least (a bulk request can touch thousands; enough to decide)."""


def request_of(event: AuditEvent) -> str:
    """The request an event belongs to: its correlation id, else its cause, else itself."""
    if event.correlation_id:
        return "c:" + event.correlation_id
    if event.parent_event_id is not None:
        return "e:" + str(event.parent_event_id)
    return "e:" + str(event.event_id)


def _crossing(
    seen: list[list[Any]], window: int, threshold: int, bulk_requests: int, bulk_items: int
) -> list[list[Any]] | None:
    """The first window of ``seen`` (sorted) that alerts: ``threshold`` requests, or
    ``bulk_requests`` requests with ``bulk_items`` items; None when none does."""
    per: dict[str, int] = {}
    left = 0
    for right, entry in enumerate(seen):
        per[entry[2]] = per.get(entry[2], 0) + 1
        while entry[0] - seen[left][0] > window:
            gone = seen[left][2]
            per[gone] -= 1
            if not per[gone]:
                del per[gone]
            left += 1
        items = right - left + 1
        if len(per) >= threshold or (len(per) >= bulk_requests and items >= bulk_items):
            return seen[left : right + 1]
    return None


def _spread(hit: list[list[Any]]) -> list[list[Any]]:
    """Evidence: the first item of each request, then other items, up to the limit."""
    firsts: dict[str, list[Any]] = {}
    for e in hit:
        firsts.setdefault(e[2], e)
    rest = [e for e in hit if firsts[e[2]] is not e]
    return [*firsts.values(), *rest][:MAX_EVIDENCE]


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
