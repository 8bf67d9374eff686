"""Which features made a window unusual, and by how much.

An IsolationForest says *that* a window is isolated, not *why*. The explanation compares each
feature with the training windows: a robust z-score on the scale the forest splits on
(log counts, raw shares), ``(x - median) / scale``, where the scale is the MAD (x 1.4826, so it
estimates a standard deviation). Most count features are zero in most windows (exports,
failed sign-ins), so their MAD is 0: the scale then falls back to the standard deviation,
and never goes below a floor (``MIN_SCALE``), so "3 exports where training saw none" is a
large but finite deviation. The alert shows raw values
next to the training median and p99, which is what an analyst reads; the z-score ranks them.

The same z-scores are the model's second alerting channel (``excess``). An IsolationForest
cannot extrapolate: its splits lie within the training data, so a window with 300 exports,
where training saw at most 1, lands in the same leaf as a window with 1 export and scores
like it (measured on synthetic data: 0.64, below a 0.68 threshold that typical windows with
a rare mix of small counts reach). ``excess``, the largest upward z-score, catches exactly
what the forest can't see: a value far beyond what the actor population does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from auditstream.detectors.anomaly.features import FEATURES

MAD_TO_SIGMA = 1.4826
MIN_SCALE = {"log1p": 0.25, "identity": 0.05}
"""Floors: a quarter of a log unit (about x1.3) for counts, five points for shares."""
UNUSUAL_Z = 3.0
MAX_NAMED = 3


@dataclass(frozen=True)
class Baseline:
    """One feature over the training windows: raw quantiles, and centre / scale in model space."""

    feature: str
    median: float
    p90: float
    p99: float
    max: float
    center: float
    scale: float


@dataclass(frozen=True)
class Deviation:
    feature: str
    label: str
    unit: str
    value: float
    median: float
    p99: float
    max: float
    z: float

    @property
    def above(self) -> bool:
        return self.z > 0

    def describe(self) -> str:
        direction = "above" if self.above else "below"
        beyond = (
            f", beyond every training window (max {_fmt(self.max, self.unit)})"
            if self.value > self.max
            else ""
        )
        return (
            f"{self.label} {_fmt(self.value, self.unit)} (usual {_fmt(self.median, self.unit)}, "
            f"p99 {_fmt(self.p99, self.unit)}; {abs(self.z):.1f} robust SD {direction}{beyond})"
        )


def _fmt(value: float, unit: str) -> str:
    if unit == "share":
        return f"{value:.0%}"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def baselines(raw: NDArray[np.float64], transformed: NDArray[np.float64]) -> list[Baseline]:
    """Per-feature baselines from the training matrix (rows: windows)."""
    out = []
    for j, feature in enumerate(FEATURES):
        column = transformed[:, j]
        center = float(np.median(column))
        mad = float(np.median(np.abs(column - center))) * MAD_TO_SIGMA
        scale = max(mad or float(np.std(column)), MIN_SCALE[feature.transform])
        r = raw[:, j]
        out.append(
            Baseline(
                feature=feature.name,
                median=float(np.median(r)),
                p90=float(np.quantile(r, 0.9)),
                p99=float(np.quantile(r, 0.99)),
                max=float(np.max(r)),
                center=center,
                scale=scale,
            )
        )
    return out


def deviations(
    raw: Sequence[float], transformed: Sequence[float], base: Sequence[Baseline]
) -> list[Deviation]:
    """Every feature's deviation, largest first."""
    out = [
        Deviation(
            feature=f.name,
            label=f.label,
            unit=f.unit,
            value=float(raw[j]),
            median=b.median,
            p99=b.p99,
            max=b.max,
            z=(float(transformed[j]) - b.center) / b.scale,
        )
        for j, (f, b) in enumerate(zip(FEATURES, base, strict=True))
    ]
    return sorted(out, key=lambda d: -abs(d.z))


def excess(transformed: NDArray[np.float64], base: Sequence[Baseline]) -> NDArray[np.float64]:
    """The largest upward robust z-score of each window (row); 0 when nothing is above usual."""
    center = np.asarray([b.center for b in base])
    scale = np.asarray([b.scale for b in base])
    z = (np.asarray(transformed, dtype=np.float64) - center) / scale
    return np.asarray(np.maximum(z.max(axis=1), 0.0), dtype=np.float64)


def unusual(
    raw: Sequence[float], transformed: Sequence[float], base: Sequence[Baseline]
) -> list[Deviation]:
    """The features to name: up to ``MAX_NAMED`` beyond ``UNUSUAL_Z``; at least the largest."""
    ranked = deviations(raw, transformed, base)
    named = [d for d in ranked if abs(d.z) >= UNUSUAL_Z][:MAX_NAMED]
    return named or ranked[:1]
