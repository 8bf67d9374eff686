"""The model file: a versioned, self-describing header, then the fitted estimator.

Layout (one file)::

    AUDITSTREAM-ANOMALY-MODEL\\n
    {header JSON on one line}\\n
    <joblib payload: the fitted IsolationForest>

The header says everything needed to decide whether the file may be used, without touching
the payload: format version, the feature set it was trained on (names and ``FEATURE_SET_ID``),
window length, training range and size, contamination and the two alert thresholds derived
from it (isolation score; largest robust z-score, see ``explain``), the minimum window size
that may alert, library versions, per-feature baselines for the explanations, and the
payload's size and sha256. ``load`` checks, in this order, the magic
line, the format version, the feature set, the scikit-learn version (same major.minor: pickles
are not portable across scikit-learn releases), the payload size and digest, and only then
unpickles. Every refusal is a ``ModelError`` saying what to do (usually: retrain).

**Trust boundary.** The payload is a pickle (joblib): unpickling runs whatever code the file
says, so loading a model file is as dangerous as running a program from it. Load only files
written by ``auditstream model train`` on a machine you trust, kept where only the pipeline's
operators can write (``save`` writes mode 0640). The sha256 in the header catches corruption
and truncation, *not* tampering: whoever can write the file can rewrite the digest too.
``read_header`` / ``auditstream model info`` never unpickle and are safe on any file.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from auditstream.detectors.anomaly import explain
from auditstream.detectors.anomaly.explain import Baseline
from auditstream.detectors.anomaly.features import (
    FEATURE_NAMES,
    FEATURE_SET_ID,
    FEATURES,
    WINDOW_SECONDS,
    model_space,
)

MAGIC = b"AUDITSTREAM-ANOMALY-MODEL\n"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20


class ModelError(ValueError):
    """The model file can't be used; the message says why and what to do."""


class ModelHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int
    created_at: str
    feature_set_id: str
    features: list[str]
    transforms: list[str]
    window_seconds: int
    trained_from: str
    trained_to: str
    events: int
    windows: int
    actors: int
    tenants: int
    contamination: float
    threshold: float
    """Windows scoring above this anomaly score alert (``-score_samples``, in (0, 1])..."""
    excess_threshold: float
    """...and so do windows with a feature more than this many robust SDs above usual
    (``explain.excess``). Strictly above: a tie with the training quantile does not alert."""
    min_events: int
    """Windows with fewer events never alert (too little to say anything)."""
    n_estimators: int
    max_samples: int
    seed: int
    sklearn_version: str
    numpy_version: str
    python_version: str
    baselines: list[Baseline]
    payload_sha256: str = ""
    payload_bytes: int = 0


@dataclass(frozen=True)
class AnomalyModel:
    header: ModelHeader
    forest: Any
    """A fitted ``sklearn.ensemble.IsolationForest``."""

    def scores(self, raw: Sequence[Sequence[float]]) -> NDArray[np.float64]:
        """Anomaly scores (higher: more isolated) of raw feature vectors."""
        return np.asarray(-self.forest.score_samples(model_space(raw)), dtype=np.float64)

    def excesses(self, raw: Sequence[Sequence[float]]) -> NDArray[np.float64]:
        """The largest upward robust z-score of each raw feature vector."""
        return explain.excess(model_space(raw), self.header.baselines)

    def alerting(self, raw: Sequence[Sequence[float]]) -> list[tuple[bool, float, float]]:
        """(alerts?, anomaly score, excess) per raw feature vector, one forest call."""
        h = self.header
        return [
            (bool(score > h.threshold or excess > h.excess_threshold), float(score), float(excess))
            for score, excess in zip(self.scores(raw), self.excesses(raw), strict=True)
        ]


@dataclass(frozen=True)
class Versions:
    sklearn: str
    numpy: str
    python: str


def library_versions() -> Versions:
    import sklearn

    return Versions(sklearn.__version__, np.__version__, platform.python_version())


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def save(model: AnomalyModel, path: Path) -> ModelHeader:
    """Write atomically (a crash leaves the old file or the new one); returns the header."""
    import joblib  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    joblib.dump(model.forest, buffer)
    payload = buffer.getvalue()
    header = model.header.model_copy(
        update={
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_bytes": len(payload),
        }
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(MAGIC)
            out.write(header.model_dump_json().encode() + b"\n")
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return header


def _read(path: Path) -> tuple[ModelHeader, bytes]:
    try:
        with Path(path).open("rb") as f:
            magic = f.readline(len(MAGIC))
            if magic != MAGIC:
                raise ModelError(f"{path} is not an auditstream anomaly model file")
            line = f.readline(MAX_HEADER_BYTES)
            payload = f.read()
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ModelError(f"{path}: the header is damaged (not JSON)") from None
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{path} is model format {version}; this auditstream reads format "
            f"{FORMAT_VERSION}. Retrain with `auditstream model train`."
        )
    try:
        return ModelHeader.model_validate(doc), payload
    except ValidationError as exc:
        raise ModelError(f"{path}: the header is damaged: {exc.errors()[0]['msg']}") from None


def read_header(path: Path) -> ModelHeader:
    """The header only: never unpickles, safe on any file."""
    return _read(path)[0]


def payload_intact(path: Path) -> bool:
    header, payload = _read(path)
    return len(payload) == header.payload_bytes and (
        hashlib.sha256(payload).hexdigest() == header.payload_sha256
    )


def check_compatible(header: ModelHeader, path: Path | str = "the model") -> None:
    """Refuse a model this code can't score with: other features, window or library."""
    expected = list(FEATURE_NAMES)
    if header.features != expected or header.transforms != [f.transform for f in FEATURES]:
        raise ModelError(
            f"{path} was trained on features {header.features}, but this auditstream computes "
            f"{expected}. Retrain with `auditstream model train`."
        )
    if header.feature_set_id != FEATURE_SET_ID:
        raise ModelError(
            f"{path} was trained on another definition of the window features (feature set "
            f"{header.feature_set_id}, this auditstream has {FEATURE_SET_ID}). "
            "Retrain with `auditstream model train`."
        )
    if header.window_seconds != WINDOW_SECONDS:
        raise ModelError(
            f"{path} was trained on {header.window_seconds}-second windows; the stream uses "
            f"{WINDOW_SECONDS}. Retrain with `auditstream model train`."
        )
    have = library_versions().sklearn
    if _major_minor(header.sklearn_version) != _major_minor(have):
        raise ModelError(
            f"{path} was written by scikit-learn {header.sklearn_version}; this environment "
            f"has {have}, which can't be trusted to read it. Retrain with "
            "`auditstream model train`."
        )


def load(path: Path) -> AnomalyModel:
    """Check the header and the digest, then unpickle. See the trust note in the docstring."""
    import joblib
    from sklearn.ensemble import IsolationForest

    header, payload = _read(path)
    check_compatible(header, path)
    if len(payload) != header.payload_bytes:
        raise ModelError(
            f"{path} is truncated or padded: the payload is {len(payload)} bytes, "
            f"the header says {header.payload_bytes}"
        )
    if hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise ModelError(f"{path} is corrupted: the payload does not match its sha256")
    with warnings.catch_warnings():
        # A patch-level scikit-learn difference (major.minor were checked above).
        warnings.simplefilter("ignore", category=UserWarning)
        forest = joblib.load(io.BytesIO(payload))
    if not isinstance(forest, IsolationForest) or forest.n_features_in_ != len(FEATURE_NAMES):
        raise ModelError(
            f"{path} does not hold an IsolationForest over {len(FEATURE_NAMES)} features"
        )
    return AnomalyModel(header, forest)
