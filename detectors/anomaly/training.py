"""Training: audit_events -> window summaries (SQL) -> feature matrix -> IsolationForest.

``fetch_windows`` runs two read-only queries through whatever ``query`` callable it is given
(the CLI passes ``sinks.query.run``, which asks the running sink when the embedded store is
in use, so training never opens chDB itself): the time zones present, then one row per
actor-hour (``features.window_sql``). ``fit`` turns the summaries into ``feature_vector`` rows,
fits the forest on their ``model_space`` transform, and derives the alert thresholds: the
``1 - contamination`` quantiles, over the training windows big enough to alert
(``min_events``), of the anomaly score and of the largest upward robust z-score (``excess``,
see ``explain``; never below ``explain.UNUSUAL_Z``). Each channel alone would flag about
``contamination`` of ordinary windows; together at most twice that. Both are strict: a window
alerts when it is *above* the quantile, so a tie with the most extreme training windows (common
for small counts) does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from auditstream.detectors.anomaly import explain
from auditstream.detectors.anomaly.features import (
    FEATURE_NAMES,
    FEATURE_SET_ID,
    FEATURES,
    WINDOW_SECONDS,
    SqlWindow,
    feature_vector,
    model_space,
    window_from_row,
    window_sql,
    zones_sql,
)
from auditstream.detectors.anomaly.model import (
    FORMAT_VERSION,
    AnomalyModel,
    ModelHeader,
    library_versions,
)

MAX_CALIBRATION_WINDOWS = 250_000
"""Thresholds are quantiles over at most this many windows (a seeded sample beyond)."""

Query = Callable[[str], Sequence[Sequence[Any]]]
"""Runs one read-only statement and returns its rows."""


class TrainingError(ValueError):
    """Training can't produce a useful model (e.g. too little history)."""


@dataclass(frozen=True)
class TrainingParams:
    days: float = 30.0
    contamination: float = 0.001
    min_events: int = 5
    n_estimators: int = 200
    max_samples: int = 256
    seed: int = 0
    min_windows: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.contamination < 0.5:
            raise TrainingError("contamination must be between 0 and 0.5 (e.g. 0.001)")
        if self.days <= 0:
            raise TrainingError("days must be positive")


def training_range(now: datetime, days: float) -> tuple[datetime, datetime]:
    """``days`` of history ending at the start of the current hour (a complete window)."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(days=days), end


def fetch_windows(query: Query, start: datetime, end: datetime) -> list[SqlWindow]:
    zones = [str(row[0]) for row in query(zones_sql(start, end))]
    return [window_from_row(row) for row in query(window_sql(start, end, zones))]


def fit(
    windows: Sequence[SqlWindow],
    params: TrainingParams,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> AnomalyModel:
    from sklearn.ensemble import IsolationForest

    if len(windows) < params.min_windows:
        raise TrainingError(
            f"{len(windows)} actor-hour windows between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC; at least {params.min_windows} are needed. "
            "Train on more days (--days) once more history is stored."
        )
    raw = np.asarray([feature_vector(w.summary) for w in windows], dtype=np.float64)
    x = model_space(raw)
    forest = IsolationForest(
        n_estimators=params.n_estimators,
        max_samples=min(params.max_samples, len(windows)),
        contamination="auto",
        random_state=params.seed,
    )
    forest.fit(x)
    base = explain.baselines(raw, x)
    events = raw[:, FEATURE_NAMES.index("events")]
    eligible = np.flatnonzero(events >= params.min_events)
    if len(eligible) < 20:
        eligible = np.arange(len(windows))
    if len(eligible) > MAX_CALIBRATION_WINDOWS:  # scoring all would cost more than fitting
        rng = np.random.default_rng(params.seed)
        eligible = rng.choice(eligible, MAX_CALIBRATION_WINDOWS, replace=False)
    level = 1.0 - params.contamination
    scores = -forest.score_samples(x[eligible])
    threshold = float(np.quantile(scores, level, method="higher"))
    excess_threshold = max(
        float(np.quantile(explain.excess(x[eligible], base), level, method="higher")),
        explain.UNUSUAL_Z,
    )
    versions = library_versions()
    header = ModelHeader(
        format_version=FORMAT_VERSION,
        created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        feature_set_id=FEATURE_SET_ID,
        features=list(FEATURE_NAMES),
        transforms=[f.transform for f in FEATURES],
        window_seconds=WINDOW_SECONDS,
        trained_from=start.isoformat(timespec="seconds"),
        trained_to=end.isoformat(timespec="seconds"),
        events=int(events.sum()),
        windows=len(windows),
        actors=len({(w.tenant_id, w.actor_id) for w in windows}),
        tenants=len({w.tenant_id for w in windows}),
        contamination=params.contamination,
        threshold=threshold,
        excess_threshold=excess_threshold,
        min_events=params.min_events,
        n_estimators=params.n_estimators,
        max_samples=min(params.max_samples, len(windows)),
        seed=params.seed,
        baselines=base,
        sklearn_version=versions.sklearn,
        numpy_version=versions.numpy,
        python_version=versions.python,
    )
    return AnomalyModel(header, forest)


def train(
    query: Query,
    params: TrainingParams,
    now: datetime | None = None,
    on_step: Callable[[str], None] = lambda step: None,
) -> AnomalyModel:
    now = now or datetime.now(UTC)
    start, end = training_range(now, params.days)
    on_step("querying actor-hour windows")
    windows = fetch_windows(query, start, end)
    on_step(f"fitting the forest on {len(windows)} windows")
    return fit(windows, params, start, end, now)
