"""The sink loop against real Kafka and the real (embedded) store: a batch over 150 monthly
partitions is stored and committed, and a broker restart under a running loop costs
nothing (it keeps running and stores what was produced before, during and after)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from auditstream.config import LocalKafka, Topics
from auditstream.infra import kafka_local, topics
from auditstream.producers.sample import events as sample_events
from auditstream.schemas import AuditEvent
from auditstream.schemas.codec import encode
from auditstream.sinks import tables
from auditstream.sinks.consumer import (
    RetryPolicy,
    SinkConfig,
    SinkLoop,
    consumer_config,
    producer_config,
)
from auditstream.sinks.horizon import Horizon, read_ttl_days
from auditstream.sinks.writer import EventWriter

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def database(embedded: Any) -> Iterator[str]:
    name = f"ride_{uuid.uuid4().hex[:10]}"
    embedded.command(f"CREATE DATABASE {name}")
    tables.ensure(embedded, name, 3650)
    tables.ensure_accounting(embedded, name, 3650, 3650)
    yield name
    embedded.command(f"DROP DATABASE {name}")


def produce(bootstrap: str, topic: str, times: list[datetime], seed: int) -> None:
    producer = Producer(producer_config(bootstrap))
    for fields, when in zip(sample_events(len(times), seed=seed), times, strict=True):
        fields["occurred_at"] = when
        event = AuditEvent(**fields, received_at=when)
        producer.produce(topic, key=event.key, value=encode(event))
        producer.poll(0)
    assert producer.flush(60) == 0


def sink_loop(
    bootstrap: str, group: str, topic: str, client: Any, database: str, dlq: str
) -> tuple[SinkLoop, Consumer]:
    consumer = Consumer(consumer_config(bootstrap, group))
    loop = SinkLoop(
        consumer=consumer,
        writer=EventWriter(client, database, raw_topic="raw"),
        dead_letters=Producer(producer_config(bootstrap)),
        config=SinkConfig(
            topic=topic,
            dead_letter_topic=dlq,
            max_rows=5_000,
            max_seconds=0.2,
            retry=RetryPolicy(initial_seconds=0.1, max_seconds=1.0),
        ),
        horizon=Horizon(lambda: read_ttl_days(client, database, "audit_events", "occurred_at")),
    )
    return loop, consumer


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        reader.close()


def test_events_over_150_months_are_stored_and_committed(
    env: Env, embedded: Any, database: str
) -> None:
    topic = env.settings.topics.normalized
    start = datetime(2017, 2, 15, tzinfo=UTC)
    months = [start.replace(year=2017 + (m + 1) // 12, month=(m + 1) % 12 + 1) for m in range(150)]
    produce(env.bootstrap, topic, months * 4, seed=5)
    group = f"{env.settings.app_id}-sink"
    loop, _ = sink_loop(
        env.bootstrap, group, topic, embedded, database, env.settings.topics.dead_letter
    )
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        count = f"SELECT count() FROM `{database}`.audit_events"
        wait_for(lambda: embedded.command(count) == 600, what="600 events stored")
        wait_for(
            lambda: committed(env.bootstrap, group, topic, env.settings.topics.partitions) == 600,
            what="offsets committed",
        )
        assert (
            embedded.command(
                f"SELECT uniqExact(toYYYYMM(occurred_at)) FROM `{database}`.audit_events"
            )
            == 150
        )
        assert loop.stats.failed_writes == 0
    finally:
        loop.stopping.set()
        thread.join(60)
    assert not thread.is_alive()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, to restart (the session's broker is left alone)."""
    local = LocalKafka(
        home=tmp_path / "kafka", port=_free_port(), controller_port=_free_port(), heap_mb=384
    )
    kafka_local.up(local, timeout=120)
    try:
        yield local
    finally:
        kafka_local.down(local)


class GatedWriter(EventWriter):
    """The real writer; while ``gate`` is clear a write waits for it (``entered`` set)."""

    def __init__(self, client: Any, database: str) -> None:
        super().__init__(client, database, raw_topic="raw")
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write(self, batch: Any) -> Any:
        if not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(120)
        return super().write(batch)


def test_a_broker_restart_under_a_running_sink_loses_nothing(
    own_broker: LocalKafka, embedded: Any, database: str
) -> None:
    """The broker goes down between a write and its commit (the commit fails, _WAIT_COORD /
    transport errors), and comes back: the loop keeps running, retries the commit, and
    stores everything produced before and after, once."""
    bootstrap = own_broker.bootstrap
    names = Topics().with_prefix(f"r{uuid.uuid4().hex[:8]}.")
    names = Topics(**{**names.__dict__, "partitions": 3})
    topics.ensure_topics(bootstrap, names)
    group = f"restart-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    produce(bootstrap, names.normalized, [now] * 300, seed=1)

    loop, _ = sink_loop(bootstrap, group, names.normalized, embedded, database, names.dead_letter)
    writer = GatedWriter(embedded, database)
    loop._writer = writer
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    count = f"SELECT count() FROM `{database}`.audit_events"
    try:
        wait_for(lambda: embedded.command(count) == 300, what="the first 300 stored")
        wait_for(lambda: committed(bootstrap, group, names.normalized, 3) == 300, what="commit")
        writer.gate.clear()
        produce(bootstrap, names.normalized, [now] * 300, seed=2)
        assert writer.entered.wait(60)
        kafka_local.down(own_broker)
        writer.gate.set()  # the write lands; its commit meets no broker
        wait_for(lambda: loop.stats.failed_commits >= 1, what="a failed commit")
        assert thread.is_alive(), failure
        kafka_local.up(own_broker, timeout=120)
        produce(bootstrap, names.normalized, [now] * 300, seed=3)
        wait_for(lambda: embedded.command(count) == 900, timeout=120, what="all 900 stored")
        wait_for(
            lambda: committed(bootstrap, group, names.normalized, 3) == 900,
            timeout=120,
            what="every offset committed after the restart",
        )
        assert thread.is_alive(), failure
    finally:
        writer.gate.set()
        loop.stopping.set()
        thread.join(60)
    assert failure == []
    assert embedded.command(count) == 900


def test_a_write_longer_than_max_poll_interval_keeps_the_group_membership(
    env: Env, embedded: Any, database: str
) -> None:
    """The write runs on the writer thread and the consumer thread polls on, so a write
    held past ``max.poll.interval.ms`` does not get the consumer thrown out of its group
    (which used to drop the batch, rebalance, and read it all again)."""
    topic = env.settings.topics.normalized
    now = datetime.now(UTC).replace(microsecond=0)
    produce(env.bootstrap, topic, [now] * 100, seed=4)
    group = f"{env.settings.app_id}-sink"
    loop, consumer = sink_loop(
        env.bootstrap, group, topic, embedded, database, env.settings.topics.dead_letter
    )
    consumer.close()
    short = {**consumer_config(env.bootstrap, group), "max.poll.interval.ms": 10_000}
    loop._consumer = Consumer(short)
    writer = GatedWriter(embedded, database)
    writer.gate.clear()
    loop._writer = writer
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        assert writer.entered.wait(60)
        # Hold the write for longer than max.poll.interval.ms (the scenario, not a wait
        # for something to happen).
        time.sleep(13)
        writer.gate.set()
        wait_for(
            lambda: committed(env.bootstrap, group, topic, env.settings.topics.partitions) == 100,
            what="the held batch committed",
        )
        assert embedded.command(f"SELECT count() FROM `{database}`.audit_events") == 100
        assert loop.stats.dropped_on_revoke == 0
        assert loop.stats.failed_commits == 0
    finally:
        writer.gate.set()
        loop.stopping.set()
        thread.join(60)
