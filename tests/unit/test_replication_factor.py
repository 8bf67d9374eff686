"""AUDITSTREAM_REPLICATION_FACTOR: one setting for our topics and Faust's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from auditstream.config import ConfigError, Settings, Topics
from auditstream.stream_jobs import app as app_module


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **env})


def test_unset_means_the_brokers_default(tmp_path: Path) -> None:
    assert settings(tmp_path).topics.replication_factor is None
    assert settings(tmp_path, AUDITSTREAM_REPLICATION_FACTOR="").topics.replication_factor is None
    assert settings(tmp_path, AUDITSTREAM_REPLICATION_FACTOR="-1").topics.replication_factor is None
    assert Topics().replication_factor is None


def test_a_number_is_kept_under_a_prefix(tmp_path: Path) -> None:
    s = settings(tmp_path, AUDITSTREAM_REPLICATION_FACTOR="3", AUDITSTREAM_TOPIC_PREFIX="x.")
    assert s.topics.replication_factor == 3
    assert s.topics.normalized == "x.audit.events"


@pytest.mark.parametrize("raw", ["0", "-2", "three", "1.5"])
def test_nonsense_is_refused_with_the_variable_named(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="AUDITSTREAM_REPLICATION_FACTOR"):
        settings(tmp_path, AUDITSTREAM_REPLICATION_FACTOR=raw)


def test_faust_gets_the_configured_number_or_the_brokers_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module.topic_admin, "default_replication_factor", lambda *a: 2)
    assert app_module.replication_factor(settings(tmp_path)) == 2
    configured = settings(tmp_path, AUDITSTREAM_REPLICATION_FACTOR="3")
    assert app_module.replication_factor(configured) == 3
    assert app_module.create_app(configured).conf.topic_replication_factor == 3


def test_the_start_waits_for_a_broker_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[Any] = [KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))] * 3 + [1]

    def lookup(*args: Any) -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return int(answer)

    monkeypatch.setattr(app_module.topic_admin, "default_replication_factor", lookup)
    got = asyncio.run(app_module.wait_for_broker(settings(tmp_path), retry_seconds=0))
    assert got == 1
    warnings = [r for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(warnings) == 3
    assert all(r.exc_info is None for r in warnings)
    assert "keeps trying" in warnings[0].getMessage()
