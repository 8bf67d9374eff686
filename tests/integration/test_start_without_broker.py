"""Services started before their broker wait for it: one sentence, no traceback, no exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.integration

ROLES = ("normalizer", "worker", "sink")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Outcome:
    waiting_after_a_retry: bool
    returncode: int
    text: str


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The three services, each with its own home, started at once against a closed port
    (they do not share anything but that port): the module waits for them once, not thrice."""
    base = tmp_path_factory.mktemp("no-broker")
    port = _closed_port()
    logs = {role: base / f"{role}.log" for role in ROLES}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    waiting: dict[str, bool] = {}
    try:
        for role in ROLES:
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                "AUDITSTREAM_HOME": str(base / role / "home"),
                "PYTHONUNBUFFERED": "1",
            }
            with logs[role].open("wb") as out:
                procs[role] = subprocess.Popen(
                    [sys.executable, "-m", "auditstream.cli.main", role],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )

        def said_or_exited(role: str) -> bool:
            return "unreachable" in logs[role].read_text() or procs[role].poll() is not None

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(said_or_exited(r) for r in ROLES):
            time.sleep(0.2)
        time.sleep(6)  # past one retry of each (5 s): still waiting, still quiet
        waiting = {role: procs[role].poll() is None for role in ROLES}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(30)
    return {
        role: Outcome(waiting[role], procs[role].returncode, logs[role].read_text())
        for role in ROLES
    }


@pytest.mark.parametrize("role", ROLES)
def test_service_waits_for_an_unreachable_broker(role: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[role]
    text = outcome.text
    assert outcome.waiting_after_a_retry, text
    assert outcome.returncode == 0, text  # told to stop while waiting: a clean stop
    assert f"{role}: stopped before it started" in text
    assert "is unreachable" in text
    assert "Traceback" not in text
    assert len(text.splitlines()) <= 4, text
