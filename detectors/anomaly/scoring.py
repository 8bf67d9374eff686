"""Closed windows -> anomaly scores (one forest call per micro-batch) -> explained alerts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from auditstream.detectors.anomaly import explain
from auditstream.detectors.anomaly.features import feature_vector, model_space
from auditstream.detectors.anomaly.model import AnomalyModel
from auditstream.detectors.anomaly.windows import ClosedWindow
from auditstream.detectors.timeutil import from_millis
from auditstream.schemas.alert import MAX_EVIDENCE, Alert, Observation, Severity, stable_alert_id

RULE = "anomalous_activity"
MITRE = ("T1078", "Valid Accounts")


class Scorer:
    def __init__(
        self, model: AnomalyModel, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.model = model
        self._now = now

    def alerts(self, windows: Sequence[ClosedWindow]) -> list[Alert]:
        """Alerts for the windows that score at or above the model's threshold."""
        header = self.model.header
        eligible = [w for w in windows if w.summary.events >= header.min_events]
        if not eligible:
            return []
        raw = [feature_vector(w.summary) for w in eligible]
        verdicts = self.model.alerting(raw)
        return [
            self._alert(window, row, score, excess)
            for window, row, (alerts, score, excess) in zip(eligible, raw, verdicts, strict=True)
            if alerts
        ]

    def _alert(
        self, window: ClosedWindow, raw: Sequence[float], score: float, excess: float
    ) -> Alert:
        header = self.model.header
        named = explain.unusual(raw, list(model_space([raw])[0]), header.baselines)
        start = from_millis(window.start_ms)
        headline = "; ".join(f"{d.label} {_short(d)}" for d in named[:2])
        explanation = (
            f"In the hour from {start:%Y-%m-%d %H:%M} UTC, {window.actor_id} made "
            f"{window.summary.events} events. Unusual: "
            + "; ".join(d.describe() for d in named)
            + f". Isolation score {score:.3f} (alerts from {header.threshold:.3f}); largest "
            f"deviation {excess:.1f} robust SD (alerts from {header.excess_threshold:.1f}). "
            f"Both thresholds mark the most unusual {header.contamination:.2%} of the "
            f"{header.windows} actor-hours from {header.trained_from[:10]} to "
            f"{header.trained_to[:10]} the model was trained on."
        )
        observations = [
            Observation(metric=d.feature, observed=d.value, baseline=d.median, unit=d.unit)
            for d in named
        ]
        observations.append(
            Observation(
                metric="anomaly_score",
                observed=round(score, 4),
                baseline=round(header.threshold, 4),
                unit="isolation score",
            )
        )
        technique, technique_name = MITRE
        return Alert(
            alert_id=stable_alert_id(RULE, window.tenant_id, window.actor_id, start),
            rule=RULE,
            severity=Severity.MEDIUM,
            tenant_id=window.tenant_id,
            actor_id=window.actor_id,
            subject=window.actor_id,
            title=f"Unusual activity by {window.actor_id}: {headline}",
            explanation=explanation,
            observations=observations,
            window_start=start,
            window_end=from_millis(window.end_ms),
            first_seen=from_millis(window.first_ms),
            last_seen=from_millis(window.last_ms),
            evidence_event_ids=[uuid.UUID(e) for e in window.evidence[-MAX_EVIDENCE:]],
            mitre_technique=technique,
            mitre_name=technique_name,
            detected_at=self._now(),
        )


def _short(d: explain.Deviation) -> str:
    value = f"{d.value:.0%}" if d.unit == "share" else f"{d.value:g}"
    usual = f"{d.median:.0%}" if d.unit == "share" else f"{d.median:g}"
    return f"{value} (usual {usual})"
