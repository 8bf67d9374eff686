"""Registering the anomaly agent on the worker's app (no Kafka: the app is built, not run)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditstream.config import Settings
from auditstream.detectors.anomaly import model, training
from auditstream.detectors.anomaly.features import SqlWindow, WindowSummary, facts_from_event
from auditstream.detectors.anomaly.windows import WindowRules, observe
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs import anomaly
from auditstream.stream_jobs.anomaly import TABLE
from auditstream.stream_jobs.app import create_app

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    windows = [
        SqlWindow("acme", f"u{i}", 0, WindowSummary(*[rng.randint(0, 9) for _ in range(11)]), 0, 0)
        for i in range(60)
    ]
    start, end = training.training_range(NOW, 7)
    fitted = training.fit(windows, training.TrainingParams(n_estimators=10), start, end, NOW)
    path = tmp_path_factory.mktemp("model") / "anomaly.model"
    model.save(fitted, path)
    return path


def build(tmp_path: Path, **env: str) -> Any:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **env})
    app = create_app(settings)
    stats = anomaly.register(app, settings)
    assert (stats is None) == ("anomaly-windows" not in app.agents)
    return app


def test_no_model_configured_means_no_agent_and_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="auditstream.stream_jobs.anomaly"):
        app = build(tmp_path)
    assert "anomaly-windows" not in app.agents
    assert TABLE not in app.tables
    assert [r.getMessage() for r in caplog.records if "anomaly" in r.name] == [
        "anomaly scoring off: AUDITSTREAM_ANOMALY_MODEL is not set "
        "(train a model with `auditstream model train`)"
    ]


def test_a_missing_or_unusable_model_is_one_line_and_no_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with caplog.at_level(logging.INFO, logger="auditstream.stream_jobs.anomaly"):
        missing = build(tmp_path, AUDITSTREAM_ANOMALY_MODEL=str(tmp_path / "nope.model"))
        unusable = build(tmp_path, AUDITSTREAM_ANOMALY_MODEL=str(bad))
    for app in (missing, unusable):
        assert "anomaly-windows" not in app.agents
        assert TABLE not in app.tables
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "anomaly" in r.name]
    assert [level for level, _ in lines] == ["WARNING", "ERROR"]
    assert "does not exist" in lines[0][1]
    assert "not an auditstream anomaly model" in lines[1][1]


def test_with_a_model_the_agent_and_its_table_are_registered(
    tmp_path: Path, model_file: Path
) -> None:
    app = build(tmp_path, AUDITSTREAM_ANOMALY_MODEL=str(model_file))
    assert "anomaly-windows" in app.agents
    table = app.tables[TABLE]
    assert table.partitions == 6
    # What recovery does with a changelog record: the state must come back as plain JSON.
    state: dict[str, Any] = {}
    event = AuditEvent.model_validate(
        {
            "occurred_at": NOW,
            "tenant_id": "acme",
            "actor": {"id": "u1", "timezone": "Europe/Berlin"},
            "action": "export",
            "resource": {"type": "doc", "id": "d1"},
        }
    )
    observe(state, facts_from_event(event), "acme", "u1", 4, 17, 2**62, WindowRules())
    raw = app.serializers.dumps_value(table.value_type, state, serializer=table.value_serializer)
    restored = app.serializers.loads_value(table.value_type, raw, serializer=table.value_serializer)
    assert restored == state
    key = app.serializers.dumps_key(table.key_type, "acme\x1fu1", serializer=table.key_serializer)
    assert (
        app.serializers.loads_key(table.key_type, key, serializer=table.key_serializer)
        == "acme\x1fu1"
    )
