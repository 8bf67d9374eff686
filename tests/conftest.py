"""Test guard rails and the real local Kafka broker shared by the integration tests.

Unit tests run without Kafka or ClickHouse. A test that asks for the broker must be marked
``integration``; the broker is started once per session from the Maven Central jars (the
same code as ``auditstream kafka up``) on free loopback ports, and stopped at the end.
With KAFKA_BOOTSTRAP_SERVERS set, that cluster is used instead and nothing is started.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditstream.config import LocalKafka
from auditstream.infra import kafka_local


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    local = LocalKafka(
        home=Path(tmp_path_factory.mktemp("kafka")),
        port=_free_port(),
        controller_port=_free_port(),
        heap_mb=512,
    )
    kafka_local.up(local, timeout=120)
    try:
        yield local.bootstrap
    finally:
        kafka_local.down(local)


@pytest.fixture
def kafka_bootstrap(request: pytest.FixtureRequest, _broker: str) -> str:
    if request.node.get_closest_marker("integration") is None:
        pytest.fail("a test that uses the Kafka broker must be marked @pytest.mark.integration")
    return _broker
