"""Services started before their broker wait for it: one sentence, no traceback, no exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("role", ["normalizer", "worker", "sink"])
def test_service_waits_for_an_unreachable_broker(role: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
        "AUDITSTREAM_HOME": str(tmp_path / "home"),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / f"{role}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditstream.cli.main", role],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "unreachable" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            time.sleep(6)  # past one retry: still waiting, still quiet
            assert proc.poll() is None, log.read_text()
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert proc.returncode == 0, text  # told to stop while waiting: a clean stop
    assert f"{role}: stopped before it started" in text
    assert "is unreachable" in text
    assert "Traceback" not in text
    assert len(text.splitlines()) <= 4, text
