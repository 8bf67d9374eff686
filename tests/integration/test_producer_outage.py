"""Broker stopped -> events emitted -> broker started: every event delivered once, in order.

Runs its own single-node broker (free ports, its own home) so it can stop and start it
without disturbing the session broker; the same ``home`` keeps the topic's data.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from auditstream.config import LocalKafka
from auditstream.infra import kafka_local
from auditstream.producers import AsyncAuditProducer, AuditProducer, ProducerConfig

pytestmark = pytest.mark.integration

ACTORS = ["ada", "linus", "grace", "ken"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_broker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of our own (``kafka_bootstrap`` only to keep the session's guard rails)."""
    local = LocalKafka(
        home=tmp_path / "kafka", port=_free_port(), controller_port=_free_port(), heap_mb=384
    )
    kafka_local.up(local, timeout=120)
    try:
        yield local
    finally:
        kafka_local.down(local)


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()


def _read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"r-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < expected:
            out.extend(m for m in consumer.consume(500, timeout=0.5) if m.error() is None)
        out.extend(m for m in consumer.consume(500, timeout=2) if m.error() is None)
    finally:
        consumer.close()
    return out


def _fields(actor: str, n: int) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "actor": {"id": actor},
        "action": "update",
        "resource": {"type": "doc", "id": f"d{n}"},
        "metadata": {"n": n},
    }


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("durability", ["memory", "disk"])
def test_events_emitted_while_the_broker_is_down_arrive_once_in_order(
    own_broker: LocalKafka, tmp_path: Path, kind: str, durability: str
) -> None:
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    _create_topic(own_broker.bootstrap, topic)
    config = ProducerConfig(
        bootstrap_servers=own_broker.bootstrap,
        topic=topic,
        durability=durability,
        spool_dir=tmp_path / "spool",
        buffer_max_events=200,  # small, so the outage spills into the spool too
        replay_window=500,
    )
    before, during, after = 50, 3000, 50
    emitted: list[tuple[str, str]] = []  # (actor, event id)

    def emit_range(emit: Any, start: int, count: int) -> None:
        for n in range(start, start + count):
            actor = ACTORS[n % len(ACTORS)]
            emitted.append((actor, emit(**_fields(actor, n))))

    if kind == "sync":
        producer = AuditProducer(config)
        emit_range(producer.emit, 0, before)
        assert producer.flush(30) == 0
        kafka_local.down(own_broker)
        emit_range(producer.emit, before, during)
        assert producer.flush(2) > 0  # honest: they are not in Kafka yet
        spooled = producer.stats.spooled
        kafka_local.up(own_broker, timeout=120)
        emit_range(producer.emit, before + during, after)
        assert producer.flush(90) == 0
        assert producer.close() == 0
    else:

        async def emit_async(producer: AsyncAuditProducer, start: int, count: int) -> None:
            for n in range(start, start + count):
                actor = ACTORS[n % len(ACTORS)]
                emitted.append((actor, await producer.emit(**_fields(actor, n))))

        async def run() -> int:
            async with AsyncAuditProducer(config) as producer:
                await emit_async(producer, 0, before)
                assert await producer.flush(30) == 0
                await asyncio.to_thread(kafka_local.down, own_broker)
                await emit_async(producer, before, during)
                assert await producer.flush(2) > 0
                spooled = producer.stats.spooled
                await asyncio.to_thread(kafka_local.up, own_broker, 120)
                await emit_async(producer, before + during, after)
                assert await producer.flush(90) == 0
                return spooled

        spooled = asyncio.run(run())
    total = before + during + after
    assert spooled > 0, "the outage should have sent events to the spool"

    messages = _read_all(own_broker.bootstrap, topic, total)
    ids = [orjson.loads(m.value())["event_id"] for m in messages]
    assert len(ids) == total, "every event exactly once"
    assert set(ids) == {event_id for _, event_id in emitted}
    for actor in ACTORS:
        got = [
            orjson.loads(m.value())["event_id"]
            for m in sorted(messages, key=lambda m: (m.partition(), m.offset()))
            if m.key() == f"acme:{actor}".encode()
        ]
        assert got == [e for a, e in emitted if a == actor], f"order of {actor}'s events"
