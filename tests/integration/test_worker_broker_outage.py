"""The worker rides out a broker that is down at its start and one that restarts under it.

A dedicated broker (the project's ``infra.kafka_local``, as the session broker) is stopped
and started around a running probe worker (``faust_probe.py``, our app and worker classes):
the worker keeps retrying, says so in one line, resumes, and its log stays small.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditstream.config import LocalKafka
from auditstream.infra import kafka_local

from .conftest import Env, wait_for
from .probe_support import Probe, data_offsets, produce

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30.0
"""How long the broker stays down mid-run: the scenario, not a wait for a result."""
MAX_LOG_BYTES = 64 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalKafka]:
    if request.node.get_closest_marker("integration") is None:
        pytest.fail("a test that starts a broker must be marked @pytest.mark.integration")
    local = LocalKafka(
        home=tmp_path / "kafka", port=_free_port(), controller_port=_free_port(), heap_mb=384
    )
    kafka_local.up(local, timeout=120)
    try:
        yield local
    finally:
        kafka_local.down(local)


def test_the_worker_waits_for_kafka_and_resumes_after_a_broker_restart(
    broker: LocalKafka, tmp_path: Path
) -> None:
    env = Env(broker.bootstrap, tmp_path / "home")
    probe = Probe(env, tmp_path / "probe")
    log = probe.logs / "probe-1.log"
    try:
        # Started while the broker is down: one sentence saying so, and it keeps trying.
        kafka_local.down(broker)
        probe.start()
        wait_for(lambda: "not reachable" in log.read_text(errors="replace"), what="the notice")
        kafka_local.up(broker, timeout=120)
        produce(env, 60, 0)
        wait_for(lambda: len(probe.processed()) >= 60, what="60 records after the late broker")

        # The broker goes away under the running worker, then comes back.
        kafka_local.down(broker)
        time.sleep(OUTAGE_SECONDS)
        kafka_local.up(broker, timeout=120)
        produce(env, 60, 60)
        everything = {(p, o) for p, offsets in data_offsets(env).items() for o in offsets}
        wait_for(
            lambda: everything <= set(probe.processed()),
            timeout=120,
            what="every record processed after the restart",
        )
        assert probe.proc is not None
        assert probe.proc.poll() is None, "the worker exited"
        probe.stop()
    finally:
        probe.kill()

    text = log.read_text(errors="replace")
    assert len(text.encode()) < MAX_LOG_BYTES, f"{len(text)} bytes of log:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    notices = [line for line in text.splitlines() if "not reachable" in line]
    assert 1 <= len(notices) <= 3  # one per 30 s while waiting
    assert "keeps trying" in notices[0]
