"""An eval run's pipeline takes every event of its timeline, even one pinned long ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from auditstream.config import Settings
from auditstream.simulation.evaluate import time_window_env
from auditstream.simulation.timeline import Timeline
from auditstream.stream_jobs.normalize import Invalid, Normalized, Normalizer

NOW = datetime(2028, 6, 1, 12, 0, tzinfo=UTC)


def test_a_recent_timeline_changes_nothing(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    timeline = Timeline(end=NOW - timedelta(minutes=1), history_days=28, attack_days=7)
    assert time_window_env(settings, timeline, NOW) == {}


def test_a_timeline_pinned_long_ago_gets_the_retention_it_needs(tmp_path: Path) -> None:
    # the documented `auditstream eval --end 2026-11-20T12:00+00:00`, run in mid-2028
    timeline = Timeline(end=datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    env = time_window_env(settings, timeline, NOW)
    assert set(env) == {"AUDITSTREAM_RETENTION_DAYS"}
    run = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **env})
    horizon = NOW - timedelta(days=run.clickhouse.retention_days)
    assert horizon < timeline.start, "the whole timeline is within the run's retention"


def test_a_timeline_in_the_future_gets_the_skew_it_needs(tmp_path: Path) -> None:
    timeline = Timeline(end=NOW + timedelta(days=3))
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    env = time_window_env(settings, timeline, NOW)
    run = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **env})
    assert run.normalizer.max_future_skew_seconds >= 3 * 86_400
    assert "AUDITSTREAM_RETENTION_DAYS" not in env


def test_events_of_the_pinned_timeline_are_normalized(tmp_path: Path) -> None:
    timeline = Timeline(end=datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    env = time_window_env(Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)}), timeline, NOW)
    run = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **env})
    step = Normalizer.from_settings(run, now=lambda: NOW)
    first = {
        "occurred_at": timeline.start.isoformat(),
        "tenant_id": "t",
        "actor": {"id": "u"},
        "action": "create",
        "resource": {"type": "task", "id": "1"},
    }
    assert isinstance(step(orjson.dumps(first)), Normalized)
    before = Normalizer.from_settings(
        Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)}), now=lambda: NOW
    )
    assert isinstance(before(orjson.dumps(first)), Invalid), "without it: dead-lettered"
