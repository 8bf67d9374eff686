"""``auditstream run``: up, events through the SDK, visible in ``status`` and ``/metrics``, a
killed child restarted, stopped cleanly by SIGTERM or SIGINT (real broker, chDB)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.producers.sample import events as sample_events

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

ROLES = ("sink", "normalizer", "worker")


def _start(env: Env, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "auditstream.cli.main", "run"],
        env={**os.environ, **env.vars, "AUDITSTREAM_API_PORT": "0"},
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _state(env: Env) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads((env.settings.home / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return doc


def _children(env: Env) -> dict[str, int] | None:
    state = _state(env)
    if state is None or not all(state["children"][r]["pid"] for r in ROLES):
        return None
    return {r: int(state["children"][r]["pid"]) for r in ROLES}


def _record(env: Env, role: str) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(
            (env.settings.home / "services" / f"{role}.json").read_text()
        )
    except (OSError, ValueError):
        return None
    return doc


def _metric(url: str, line_start: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours does not count (the supervisor reaps its own children)
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _status(env: Env) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", "status", "--json"],
        env={**os.environ, **env.vars},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_run_status_metrics_restart_and_sigterm(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "run.out"
    proc = _start(env, out)
    try:
        first = wait_for(lambda: _children(env), what="the three services started")
        for role in ROLES:
            wait_for(lambda role=role: _record(env, role), what=f"the {role}'s record")
        config = ProducerConfig(bootstrap_servers=env.bootstrap, topic=env.settings.topics.raw)
        with AuditProducer(config) as audit:
            for fields in sample_events(40, seed=3, run_id=env.run):
                audit.emit(**fields)
            assert audit.flush(30) == 0
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") == 40, what="stored")

        second = subprocess.run(
            [sys.executable, "-m", "auditstream.cli.main", "run"],
            env={**os.environ, **env.vars},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert second.stderr.strip().startswith("error: auditstream run is already running")

        status = _status(env)
        assert [p["role"] for p in status["processes"]] == list(ROLES)
        assert all(p["running"] and p["alive"] for p in status["processes"]), status
        assert status["supervisor"] == proc.pid
        assert status["flow"]["hour"]["in"] == 40
        assert status["flow"]["hour"]["stored"] == 40
        events = [t for t in status["tables"] if t["table"] == "audit_events"]
        assert events[0]["rows"] == 40
        assert events[0]["retention_days"] == 365
        assert {g["group"] for g in status["lag"]} >= {f"test-{env.run}-normalizer"}
        assert status["errors"] == []

        sink_url = _record(env, "sink")["metrics"]  # type: ignore[index]
        normalizer_url = _record(env, "normalizer")["metrics"]  # type: ignore[index]
        written = 'auditstream_sink_rows_written_total{table="audit_events"}'
        assert _metric(sink_url, written) == 40
        normalized = 'auditstream_normalizer_events_total{outcome="normalized"}'
        assert _metric(normalizer_url, normalized) == 40

        # The sink serves the audit-log API and the viewer, and run says where.
        api = json.loads((env.settings.home / "api.json").read_text())["url"]
        wait_for(lambda: f"viewer     {api}/ui/" in out.read_text(), what="the viewer's URL")
        with urllib.request.urlopen(api + "/ui/", timeout=10) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(api + "/v1/events", timeout=10)
        assert refused.value.code == 401

        # A child killed is started again.
        os.kill(first["normalizer"], signal.SIGKILL)
        again = wait_for(
            lambda: (c := _children(env)) and c["normalizer"] != first["normalizer"] and c,
            what="the normalizer restarted",
        )
        assert _state(env)["children"]["normalizer"]["restarts"] == 1  # type: ignore[index]
        assert "normalizer exited with -9" in out.read_text()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        text = out.read_text()
        assert "SIGTERM: stopping" in text
        assert text.rstrip().endswith("stopped")
        assert "Traceback" not in text
        assert not any(_alive(pid) for pid in again.values())
        assert not (env.settings.home / "run.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_stops_everything_on_sigint(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "run.out"
    proc = _start(env, out)
    try:
        children = wait_for(lambda: _children(env), what="the three services started")
        wait_for(lambda: _record(env, "worker"), what="the worker's record")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0
        assert not any(_alive(pid) for pid in children.values())
        logs = env.settings.home / "logs"
        assert "normalizer stopped" in (logs / "normalizer.log").read_text()
        assert "Traceback" not in out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
