"""The normalizer rides out a broker restart: it keeps running, logs a few lines (not one per
retry), and afterwards every raw offset is still in exactly one output.

Runs its own broker (the session broker is shared by every test), stopped and started again
on the same ports and data directory.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from auditstream.config import LocalKafka
from auditstream.infra import kafka_local

from .conftest import Env, wait_for
from .test_normalizer import _committed, _event, _produce, _raw_ends, _sources

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 15.0
"""How long the broker stays down: long enough for hundreds of client retries."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_normalizer_rides_out_a_broker_restart(tmp_path: Path) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("restarts a broker of its own; KAFKA_BOOTSTRAP_SERVERS names a cluster")
    local = LocalKafka(
        home=tmp_path / "kafka", port=_free_port(), controller_port=_free_port(), heap_mb=384
    )
    kafka_local.up(local, timeout=120)
    try:
        env = Env(local.bootstrap, tmp_path / "home")
        _produce(env, [(b"acme:u1", _event()) for _ in range(300)])
        pipeline = env.pipeline()
        log_path = pipeline.log_path("normalizer")
        try:
            pipeline.start("normalizer")
            wait_for(lambda: _committed(env) == _raw_ends(env), what="the first backlog")
            kafka_local.down(local)
            wait_for(lambda: "Kafka client" in log_path.read_text(), what="the outage reported")
            time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a result
            during = log_path.read_text().splitlines()
            kafka_local.up(local, timeout=120)
            _produce(env, [(b"acme:u2", _event(actor="u2")) for _ in range(300)])
            ends = _raw_ends(env)
            wait_for(lambda: _committed(env) == ends, timeout=120, what="the second backlog")
            pipeline.check()  # still the same process, alive
            assert pipeline.stop("normalizer") == 0
        finally:
            pipeline.stop_all()
        topics = env.settings.topics
        found = Counter(
            _sources(env, topics.normalized)
            + _sources(env, topics.dead_letter)
            + _sources(env, topics.repeats)
        )
        assert found == Counter({(p, o): 1 for p, end in ends.items() for o in range(end)})
        log = log_path.read_text()
        assert "Traceback" not in log
        # One line per condition per 30 s: a handful, where every retry would be hundreds.
        assert len(during) < 25, "\n".join(during)
    finally:
        kafka_local.down(local)
