"""Expected conditions print one sentence, never a traceback: Kafka down, no store, bad config."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Env

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kafka_down_and_no_store(tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
        "AUDITSTREAM_HOME": str(tmp_path / "home"),
        "COLUMNS": "400",
    }
    status = _cli(env, "status")
    assert status.returncode == 1
    assert "Traceback" not in status.stdout + status.stderr
    assert "did not answer" in status.stdout
    assert "is the broker running?" in status.stdout
    assert "there is no store at" in status.stdout
    for args in (("dlq", "list"), ("dlq", "replay", "--all")):
        done = _cli(env, *args)
        assert done.returncode == 1, done
        assert done.stderr.startswith("dlq: cannot "), done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2  # one sentence, maybe wrapped
        assert "Traceback" not in done.stderr
        assert "rdkafka" not in done.stderr  # librdkafka's own lines stay quiet


def test_bad_settings_stop_run_before_it_starts(tmp_path: Path) -> None:
    done = _cli({"AUDITSTREAM_HOME": str(tmp_path), "AUDITSTREAM_SINK_METRICS_PORT": "nine"}, "run")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "configuration error: AUDITSTREAM_SINK_METRICS_PORT='nine' is not a whole number"
    )


def test_a_service_refusing_its_config_stops_run(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "detectors.toml"
    bad.write_text("[defaults.no_such_rule]\nthreshold = 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", "run"],
        env={**os.environ, **env.vars, "AUDITSTREAM_DETECTORS_CONFIG": str(bad)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: the worker refused its configuration: detector configuration error: " in (
        done.stderr
    )
    assert "names unknown detector(s)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("stopped")
