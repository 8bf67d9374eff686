"""Runs the enabled detectors for one event and turns their findings into alerts.

The engine owns what detectors must not: per-tenant settings, enablement, the stable alert
id, and repeat suppression (by event time, so a replay suppresses exactly as the first run
did). It is pure like the detectors: the Faust agents in ``stream_jobs/detect.py`` give it an
event and the key's state, and publish what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from auditstream.detectors.base import Detector, Finding, Scope
from auditstream.detectors.config import DetectionConfig
from auditstream.schemas.alert import MAX_EVIDENCE, Alert, stable_alert_id
from auditstream.schemas.event import AuditEvent

SUPPRESSED = "_suppressed_until"
log = logging.getLogger(__name__)


def subject_of(event: AuditEvent, scope: Scope) -> str | None:
    if scope is Scope.ACTOR:
        return event.actor.id
    return event.ip


class DetectionEngine:
    def __init__(
        self,
        detectors: Sequence[Detector[Any]],
        config: DetectionConfig,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._now = now
        self.detectors = list(detectors)
        self._by_scope = {scope: [d for d in detectors if d.scope is scope] for scope in Scope}

    def has(self, scope: Scope) -> bool:
        return bool(self._by_scope[scope])

    def wants(self, event: AuditEvent, scope: Scope) -> bool:
        return any(d.wants(event) for d in self._by_scope[scope])

    def process(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        scope: Scope,
        tenant_state: dict[str, Any] | None = None,
    ) -> list[Alert]:
        """Alerts for ``event``.

        ``state`` is this key's state (all detectors) and ``tenant_state`` the tenant's as this
        partition sees it; both are updated in place for the caller to persist.
        """
        tenant_state = {} if tenant_state is None else tenant_state
        subject = subject_of(event, scope)
        if subject is None:
            return []
        alerts = []
        for detector in self._by_scope[scope]:
            settings = self._config.settings(event.tenant_id, detector.name)
            if not settings.enabled or not detector.wants(event):
                continue
            own = state.setdefault(detector.name, {})
            shared = tenant_state.setdefault(detector.name, {})
            try:
                findings = detector.observe(event, own, settings, shared)
            except Exception:  # one broken detector must not silence the others
                log.exception("detector %s failed on event %s", detector.name, event.event_id)
                continue
            for finding in findings:
                alert = self._alert(detector, finding, event, subject, scope)
                if self._suppress(state, alert.rule, event, settings.suppress_minutes):
                    continue
                alerts.append(alert)
        return alerts

    def _suppress(
        self, state: dict[str, Any], rule: str, event: AuditEvent, minutes: float
    ) -> bool:
        until: dict[str, int] = state.setdefault(SUPPRESSED, {})
        now_ms = int(event.occurred_at.timestamp() * 1000)
        if until.get(rule, 0) > now_ms:
            return True
        # max(): an out-of-order older event must not shorten a suppression already running.
        end = now_ms + int(timedelta(minutes=minutes).total_seconds() * 1000)
        until[rule] = max(until.get(rule, 0), end)
        return False

    def _alert(
        self,
        detector: Detector[Any],
        finding: Finding,
        event: AuditEvent,
        subject: str,
        scope: Scope,
    ) -> Alert:
        rule = finding.rule or detector.name
        technique, technique_name = finding.mitre or detector.mitre
        return Alert(
            alert_id=stable_alert_id(rule, event.tenant_id, subject, finding.window_start),
            rule=rule,
            severity=finding.severity,
            tenant_id=event.tenant_id,
            actor_id=event.actor.id if scope is Scope.ACTOR else None,
            subject=subject,
            title=finding.title,
            explanation=finding.explanation,
            observations=list(finding.observations),
            window_start=finding.window_start,
            window_end=finding.window_end,
            first_seen=finding.first_seen or finding.window_start,
            last_seen=finding.last_seen or finding.window_end,
            evidence_event_ids=list(dict.fromkeys(finding.evidence))[-MAX_EVIDENCE:],
            mitre_technique=technique,
            mitre_name=technique_name,
            context=dict(finding.extra),
            detected_at=self._now(),
        )
