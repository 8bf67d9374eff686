"""A failed ClickHouse write is retried, never dropped; offsets wait until it lands."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from auditstream.producers.sample import events as sample_events
from auditstream.schemas import AuditEvent
from auditstream.schemas.codec import encode
from auditstream.sinks import tables
from auditstream.sinks.batch import Batch
from auditstream.sinks.consumer import (
    RetryPolicy,
    SinkConfig,
    SinkLoop,
    consumer_config,
    producer_config,
)
from auditstream.sinks.writer import EventWriter, WriteFailed, WriteResult

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


class FlakyWriter(EventWriter):
    """The real writer, after ``failures`` refused attempts (a ClickHouse outage)."""

    def __init__(self, client: Any, database: str, failures: int) -> None:
        super().__init__(client, database)
        self.failures_left = failures
        self.attempts = 0

    def write(self, batch: Batch) -> WriteResult:
        self.attempts += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise WriteFailed("simulated: connection refused")
        return super().write(batch)


def test_failed_write_is_retried_and_offsets_wait_for_it(env: Env, embedded: Any) -> None:
    topic = env.settings.topics.normalized
    total = 500
    producer = Producer({"bootstrap.servers": env.bootstrap})
    for fields in sample_events(total, seed=21):
        event = AuditEvent(**fields, received_at=datetime.now(UTC))
        producer.produce(topic, key=event.key, value=encode(event))
    assert producer.flush(10) == 0
    del producer

    database = f"retry_{uuid.uuid4().hex[:8]}"
    embedded.command(f"CREATE DATABASE {database}")
    tables.ensure(embedded, database, 365)
    writer = FlakyWriter(embedded, database, failures=3)
    group = f"{env.settings.app_id}-sink"
    consumer = Consumer(consumer_config(env.bootstrap, group))
    loop = SinkLoop(
        consumer=consumer,
        writer=writer,
        dead_letters=Producer(producer_config(env.bootstrap)),
        config=SinkConfig(
            topic=topic,
            dead_letter_topic=env.settings.topics.dead_letter,
            max_rows=10_000,
            max_seconds=0.2,
            retry=RetryPolicy(initial_seconds=0.1, max_seconds=0.3),
        ),
    )
    partitions = [TopicPartition(topic, p) for p in range(env.settings.topics.partitions)]
    stored = f"SELECT count() FROM `{database}`.audit_events"

    def committed() -> int:
        offsets = consumer.committed(partitions, timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)

    loop.subscribe()
    try:
        # Read everything, then fail three times: nothing stored, nothing committed.
        def failed_thrice() -> bool:
            loop.step()
            # the writes run on the loop's writer thread: count what the loop has seen
            return loop.stats.failed_writes == 3

        wait_for(failed_thrice, interval=0.05, what="three failed writes")
        assert loop.stats.failed_writes == 3
        assert embedded.command(stored) == 0
        assert committed() == 0

        # The fourth attempt lands every row once; only then are the offsets committed.
        def all_stored() -> bool:
            loop.step()
            return loop.stats.inserted == total

        wait_for(all_stored, interval=0.05, what="the retried batch")
        assert embedded.command(stored) == total
        assert committed() == total
        assert loop.stats.failed_writes == 3
    finally:
        consumer.close()
