"""Test guard rails and the real local Kafka broker shared by the integration tests.

Unit tests run without Kafka or ClickHouse. A test that asks for the broker must be marked
``integration``; the broker is started once per session from the Maven Central jars (the
same code as ``auditstream kafka up``) on free loopback ports, and stopped at the end. Under
pytest-xdist (``make test``) each worker is a session of its own, with its own broker, ports
and temporary directories; tests already use topic names, groups and homes of their own.
With KAFKA_BOOTSTRAP_SERVERS set, that cluster is used instead and nothing is started.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from auditstream.config import LocalKafka
from auditstream.infra import kafka_local


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    sasl_bootstrap: str | None = None
    """The local broker's SASL_PLAINTEXT (PLAIN) listener; None on an external cluster."""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)


@pytest.fixture(scope="session")
def _broker_info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield Broker(external)
        return
    user, password = "auditstream-test", secrets.token_hex(16)  # this session's only
    local = LocalKafka(
        home=Path(tmp_path_factory.mktemp("kafka")),
        port=_free_port(),
        controller_port=_free_port(),
        heap_mb=512,
        sasl_port=_free_port(),
        sasl_users=((user, password),),
    )
    kafka_local.up(local, timeout=120)
    try:
        yield Broker(local.bootstrap, f"127.0.0.1:{local.sasl_port}", user, password)
    finally:
        kafka_local.down(local)


@pytest.fixture(scope="session")
def _broker(_broker_info: Broker) -> str:
    return _broker_info.bootstrap


@pytest.fixture
def kafka_bootstrap(request: pytest.FixtureRequest, _broker: str) -> str:
    if request.node.get_closest_marker("integration") is None:
        pytest.fail("a test that uses the Kafka broker must be marked @pytest.mark.integration")
    return _broker


@pytest.fixture
def sasl_kafka(request: pytest.FixtureRequest, _broker_info: Broker) -> Broker:
    """The session broker's SASL listener (integration tests only)."""
    if request.node.get_closest_marker("integration") is None:
        pytest.fail("a test that uses the Kafka broker must be marked @pytest.mark.integration")
    if _broker_info.sasl_bootstrap is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS names an external cluster: no local SASL listener")
    return _broker_info
