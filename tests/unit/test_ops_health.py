"""``/metrics``, ``/healthz``, ``/readyz`` of a service, and the metrics read from its stats."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from auditstream.config import ConfigError, Settings
from auditstream.ops import health, logs, metrics
from auditstream.sinks.consumer import SinkStats
from auditstream.stream_jobs.detect import DetectStats
from auditstream.stream_jobs.normalizer import NormalizerStats


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_endpoints_say_why_not() -> None:
    registry = CollectorRegistry()
    stats = NormalizerStats(normalized=7, dead_lettered=2, reasons={"invalid_json": 2})
    metrics.register(metrics.normalizer_metrics(lambda: stats), registry)
    state = {"ready": "waiting for Kafka", "alive": None}
    check = health.Health(lambda: state["alive"], lambda: state["ready"])
    server = health.HealthServer("normalizer", check, "127.0.0.1", 0, registry).start()
    try:
        assert _get(server.address + "/healthz")[0] == 200
        code, body = _get(server.address + "/readyz")
        assert code == 503
        assert json.loads(body) == {"service": "normalizer", "ready": False,
                                    "detail": "waiting for Kafka"}  # fmt: skip
        state["ready"] = None
        assert _get(server.address + "/readyz")[0] == 200
        state["alive"] = "the loop has not turned for 301 s"
        assert _get(server.address + "/healthz")[0] == 503
        code, text = _get(server.address + "/metrics")
        assert code == 200
        assert 'auditstream_normalizer_events_total{outcome="normalized"} 7.0' in text
        assert 'auditstream_normalizer_dead_letters_total{reason="invalid_json"} 2.0' in text
        assert _get(server.address + "/other")[0] == 404
    finally:
        server.stop()


def test_sink_and_worker_metrics_from_their_stats() -> None:
    registry = CollectorRegistry()
    events = SinkStats(inserted=40, writes=2, write_seconds=0.5, failed_writes=1,
                       dead_letter_reasons={"store_refused": 1})  # fmt: skip
    metrics.register(metrics.sink_metrics(lambda: [("audit_events", events)]), registry)
    detect = DetectStats(events=9, alerts=1, by_rule={"brute_force": 1})
    metrics.register(metrics.worker_metrics(detect, None), registry)
    text = generate_latest(registry).decode()
    assert 'auditstream_sink_rows_written_total{table="audit_events"} 40.0' in text
    assert 'auditstream_sink_write_seconds_count{table="audit_events"} 2.0' in text
    assert 'auditstream_sink_write_retries_total{table="audit_events"} 1.0' in text
    assert (
        'auditstream_sink_dead_letters_total{reason="store_refused",table="audit_events"} 1.0'
        in text
    )
    assert 'auditstream_worker_alerts_total{rule="brute_force"} 1.0' in text


def test_service_record_and_settings(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path),
                                  "AUDITSTREAM_SINK_METRICS_PORT": "0",
                                  "AUDITSTREAM_WORKER_METRICS_PORT": "off"})  # fmt: skip
    assert settings.metrics.port("worker") is None
    assert settings.metrics.port("normalizer") == 9181
    assert settings.metrics.host == "127.0.0.1"
    server = health.serve(settings, "sink", health.Health())
    try:
        record = health.read_record(settings, "sink")
        assert record is not None
        assert record["metrics"] == server.address
        health.add_to_record(settings, "sink", api="http://127.0.0.1:8080")
        assert health.read_record(settings, "sink")["api"] == "http://127.0.0.1:8080"  # type: ignore[index]
    finally:
        health.forget(settings, "sink", server)
    assert health.read_record(settings, "sink") is None
    for bad in ({"AUDITSTREAM_SINK_METRICS_PORT": "70000"}, {"AUDITSTREAM_LOG_FORMAT": "xml"}):
        try:
            Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **bad})
        except ConfigError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_json_log_lines(capsys: object) -> None:
    logs.configure("json")
    try:
        logs.say("sink: Kafka at 127.0.0.1:9092", err=True)
    finally:
        logs.configure("text")
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    doc = json.loads(err)
    assert doc["message"] == "sink: Kafka at 127.0.0.1:9092"
    assert doc["level"] == "info"


def test_secrets_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = Settings.from_env(
        {
            "AUDITSTREAM_HOME": str(tmp_path),
            "AUDITSTREAM_CLICKHOUSE_DSN": "http://auditstream@clickhouse:8123",
            "AUDITSTREAM_CLICKHOUSE_PASSWORD_FILE": str(secret),
        }
    )
    assert settings.clickhouse.password == "s3cret"
    assert "s3cret" not in repr(settings)
    for env, says in (
        ({"AUDITSTREAM_CLICKHOUSE_PASSWORD_FILE": str(tmp_path / "none")}, "cannot read it"),
        (
            {"KAFKA_SASL_PASSWORD": "x", "KAFKA_SASL_PASSWORD_FILE": str(secret)},
            "both set",
        ),
    ):
        with pytest.raises(ConfigError, match=says):
            Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path), **env})


def test_healthcheck_needs_a_live_healthy_service(tmp_path: Path) -> None:
    from auditstream.ops.healthcheck import check

    settings = Settings.from_env(
        {"AUDITSTREAM_HOME": str(tmp_path), "AUDITSTREAM_SINK_METRICS_PORT": "0"}
    )
    assert "no service is running" in (check(settings) or "")
    alive: dict[str, str | None] = {"why": None}
    server = health.serve(settings, "sink", health.Health(lambda: alive["why"]))
    try:
        assert check(settings) is None
        alive["why"] = "stuck"
        assert "sink" in (check(settings) or "")
    finally:
        health.forget(settings, "sink", server)
