"""Training on synthetic windows, the model file, explanations and the alerts they make."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from auditstream.detectors.anomaly import explain, model, training
from auditstream.detectors.anomaly.features import (
    FEATURE_NAMES,
    SqlWindow,
    WindowSummary,
    feature_vector,
    millis,
    model_space,
)
from auditstream.detectors.anomaly.model import ModelError
from auditstream.detectors.anomaly.scoring import RULE, Scorer
from auditstream.detectors.anomaly.training import TrainingError, TrainingParams
from auditstream.detectors.anomaly.windows import ClosedWindow
from auditstream.schemas.alert import stable_alert_id

NOW = datetime(2026, 11, 20, 12, 34, tzinfo=UTC)
START, END = training.training_range(NOW, 30)


def typical(rng: random.Random) -> WindowSummary:
    """An ordinary actor-hour: some reads and writes, rarely anything else."""
    reads, writes = rng.randint(0, 20), rng.randint(0, 15)
    deletes = rng.choice([0] * 8 + [1, 2])
    exports = rng.choice([0] * 15 + [1])
    sign_ins = rng.choice([0, 0, 1])
    failed = rng.choice([0] * 20 + [1])
    admin = rng.choice([0] * 12 + [1])
    events = reads + writes + deletes + exports + sign_ins + failed + admin
    if events == 0:
        reads = events = 1
    failures = min(events, failed + rng.choice([0] * 10 + [1]))
    off_hours = rng.choice([0] * 9 + [events])
    distinct = rng.randint(1, events)
    return WindowSummary(
        events, reads, writes, deletes, exports, sign_ins, failed, admin, failures, off_hours,
        distinct,
    )  # fmt: skip


def as_windows(summaries: list[WindowSummary]) -> list[SqlWindow]:
    start = millis(START)
    return [
        SqlWindow("acme", f"u{i % 40}", start + 3_600_000 * (i // 40), s, start, start)
        for i, s in enumerate(summaries)
    ]


@pytest.fixture(scope="module")
def fitted() -> model.AnomalyModel:
    rng = random.Random(1)
    windows = as_windows([typical(rng) for _ in range(3000)])
    return training.fit(windows, TrainingParams(n_estimators=150), START, END, NOW)


def exfiltration() -> WindowSummary:
    return WindowSummary(
        events=305, reads=3, writes=2, deletes=0, exports=300, sign_ins=0, failed_sign_ins=0,
        admin_actions=0, failures=0, off_hours=305, distinct_resources=300,
    )  # fmt: skip


def test_training_flags_an_obvious_outlier_and_few_typical_windows(
    fitted: model.AnomalyModel,
) -> None:
    h = fitted.header
    assert (h.windows, h.actors, h.tenants) == (3000, 40, 1)
    assert h.features == list(FEATURE_NAMES)
    assert 0 < h.threshold < 1
    assert h.excess_threshold >= explain.UNUSUAL_Z
    rng = random.Random(99)  # windows the forest has not seen
    fresh = [typical(rng) for _ in range(3000)]
    verdicts = fitted.alerting([feature_vector(s) for s in fresh if s.events >= h.min_events])
    alerts, _, excess = fitted.alerting([feature_vector(exfiltration())])[0]
    assert alerts
    assert excess > 3 * h.excess_threshold
    # (The forest alone scores it about 0.64, under its 0.68 threshold: isolation trees don't
    # extrapolate beyond the training range. That is what the z-score channel is for.)
    assert sum(v[0] for v in verdicts) / len(verdicts) < 0.01


def test_too_little_history_is_refused() -> None:
    rng = random.Random(2)
    with pytest.raises(TrainingError, match="at least 50 are needed"):
        training.fit(as_windows([typical(rng) for _ in range(10)]), TrainingParams(), START, END)


def test_training_range_ends_at_the_last_full_hour() -> None:
    start, end = training.training_range(NOW, 2.5)
    assert (start, end) == (
        datetime(2026, 11, 18, tzinfo=UTC),
        datetime(2026, 11, 20, 12, tzinfo=UTC),
    )


def test_train_reads_windows_through_the_query_callable() -> None:
    rng = random.Random(3)
    rows = [
        [w.tenant_id, w.actor_id, w.start_ms, *w.summary, w.first_ms, w.last_ms]
        for w in as_windows([typical(rng) for _ in range(200)])
    ]
    asked: list[str] = []

    def query(sql: str) -> list[list[object]]:
        asked.append(sql)
        return [["Europe/Berlin"], [""]] if "DISTINCT actor_timezone" in sql else rows

    steps: list[str] = []
    fitted = training.train(query, TrainingParams(n_estimators=20), NOW, steps.append)
    assert fitted.header.windows == 200
    assert "actor_timezone = 'Europe/Berlin'" in asked[1]
    assert len(steps) == 2


# --- explanations ---------------------------------------------------------------------------


def named(fitted: model.AnomalyModel, summary: WindowSummary) -> list[explain.Deviation]:
    raw = feature_vector(summary)
    return explain.unusual(raw, list(model_space([raw])[0]), fitted.header.baselines)


def test_explanation_names_the_unusual_feature(fitted: model.AnomalyModel) -> None:
    normal = WindowSummary(12, 6, 5, 0, 0, 1, 0, 0, 0, 0, 6)
    spike = normal._replace(events=52, exports=40, distinct_resources=6)
    top = named(fitted, spike)
    assert top[0].feature == "exports"
    assert top[0].value == 40
    assert top[0].median == 0
    assert top[0].z > 5
    assert "exports 40 (usual 0" in top[0].describe()
    failing = normal._replace(events=30, failed_sign_ins=18, failures=18)
    assert {d.feature for d in named(fitted, failing)[:2]} >= {"failed_sign_ins"}


def test_explanation_of_an_ordinary_window_names_at_most_its_largest_deviation(
    fitted: model.AnomalyModel,
) -> None:
    assert len(named(fitted, WindowSummary(12, 6, 5, 0, 0, 1, 0, 0, 0, 0, 6))) == 1


def test_zero_inflated_features_get_a_finite_scale(fitted: model.AnomalyModel) -> None:
    for b in fitted.header.baselines:
        assert b.scale >= explain.MIN_SCALE["identity"]
    exports = next(b for b in fitted.header.baselines if b.feature == "exports")
    assert exports.median == 0


# --- scoring into alerts --------------------------------------------------------------------


def closed(summary: WindowSummary, actor: str = "mallory") -> ClosedWindow:
    start = millis(datetime(2026, 11, 21, 3, tzinfo=UTC))
    ids = tuple(str(uuid.UUID(int=i)) for i in range(25))
    return ClosedWindow("acme", actor, start, summary, start + 60_000, start + 1_800_000, ids)


def test_scorer_alerts_on_the_outlier_only_with_its_explanation(
    fitted: model.AnomalyModel,
) -> None:
    rng = random.Random(7)
    detected = datetime(2026, 11, 21, 4, 16, tzinfo=UTC)
    scorer = Scorer(fitted, now=lambda: detected)
    batch = [closed(typical(rng), f"u{i}") for i in range(50)] + [closed(exfiltration())]
    alerts = scorer.alerts(batch)
    assert [a.actor_id for a in alerts] == ["mallory"]
    alert = alerts[0]
    start = datetime(2026, 11, 21, 3, tzinfo=UTC)
    assert alert.rule == RULE == "anomalous_activity"
    assert alert.alert_id == stable_alert_id(RULE, "acme", "mallory", start)
    assert (alert.mitre_technique, alert.mitre_name) == ("T1078", "Valid Accounts")
    assert (alert.window_start, alert.window_end) == (start, start + timedelta(hours=1))
    assert alert.first_seen == start + timedelta(minutes=1)
    assert alert.detected_at == detected
    metrics = [o.metric for o in alert.observations]
    assert "exports" in metrics[:3]
    assert metrics[-1] == "anomaly_score"
    assert "exports 300" in alert.title
    assert "exports 300 (usual 0" in alert.explanation
    assert len(alert.evidence_event_ids) == 25


def test_small_windows_never_alert(fitted: model.AnomalyModel) -> None:
    tiny = WindowSummary(4, 0, 0, 0, 4, 0, 0, 0, 4, 4, 4)  # odd, but under min_events
    assert Scorer(fitted).alerts([closed(tiny)]) == []


# --- the model file -------------------------------------------------------------------------


def test_save_and_load_round_trip(fitted: model.AnomalyModel, tmp_path: Path) -> None:
    path = tmp_path / "m" / "anomaly.model"
    header = model.save(fitted, path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert len(header.payload_sha256) == 64
    loaded = model.load(path)
    assert loaded.header == header
    rows = [feature_vector(exfiltration()), feature_vector(WindowSummary(*[1] * 11))]
    assert list(loaded.scores(rows)) == list(fitted.scores(rows))
    assert model.read_header(path) == header
    assert model.payload_intact(path)


def _rewrite_header(path: Path, **changes: object) -> None:
    magic, header, payload = path.read_bytes().split(b"\n", 2)
    doc = orjson.loads(header)
    doc.update(changes)
    path.write_bytes(magic + b"\n" + orjson.dumps(doc) + b"\n" + payload)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 2}, "is model format 2; this auditstream reads format 1"),
        ({"features": ["events", "reads"]}, "was trained on features"),
        ({"feature_set_id": "0123456789abcdef"}, "another definition of the window features"),
        ({"window_seconds": 600}, "600-second windows"),
        ({"sklearn_version": "0.24.2"}, "scikit-learn 0.24.2"),
    ],
)
def test_incompatible_models_are_refused_before_unpickling(
    fitted: model.AnomalyModel, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    path = tmp_path / "anomaly.model"
    model.save(fitted, path)
    _rewrite_header(path, **changes)
    with pytest.raises(ModelError, match=message) as caught:
        model.load(path)
    assert "Retrain with `auditstream model train`" in str(caught.value)


def test_corrupted_or_truncated_payload_is_refused(
    fitted: model.AnomalyModel, tmp_path: Path
) -> None:
    path = tmp_path / "anomaly.model"
    model.save(fitted, path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupted"):
        model.load(path)
    assert not model.payload_intact(path)
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(ModelError, match="truncated"):
        model.load(path)


def test_not_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "x.model"
    path.write_bytes(b"\x80\x04K\x01.")  # a bare pickle: never unpickled
    with pytest.raises(ModelError, match="not an auditstream anomaly model"):
        model.load(path)
    with pytest.raises(ModelError, match="cannot read"):
        model.load(tmp_path / "missing.model")
    path.write_bytes(model.MAGIC + b"{not json\n")
    with pytest.raises(ModelError, match="header is damaged"):
        model.read_header(path)
