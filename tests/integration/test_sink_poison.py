"""One row the real store refuses must not wedge the sink: chDB refuses an events row
whose ``changes.*`` arrays differ in length (a Nested structure:
SIZES_OF_ARRAYS_DONT_MATCH, a server-side refusal). The other rows are stored, the refused
row's original message reaches the dead-letter topic (``store_refused``), the offsets are
committed, and the dead-letter loop records it in ``audit_dead_letters``. Before, the batch
was retried forever with its partitions paused."""

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
from auditstream.sinks.consumer import (
    RetryPolicy,
    SinkConfig,
    SinkLoop,
    consumer_config,
    producer_config,
)
from auditstream.sinks.rows import Record, dead_letter_row, event_row
from auditstream.sinks.tables import DEAD_LETTERS, EVENTS
from auditstream.sinks.writer import BatchWriter, EventWriter
from auditstream.stream_jobs import dead_letter

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

POISON_KEY = b"poison"
CHANGES_OLD = EVENTS.index_of("changes.old")


def poisoning_row(record: Record) -> tuple[Any, ...]:
    """``event_row``, except that the message keyed ``poison`` gets a ``changes.old`` one
    longer than ``changes.field``: past rows.py's checks, refused by ClickHouse itself."""
    row = event_row(record)
    if record.key != POISON_KEY:
        return row
    values = list(row)
    values[CHANGES_OLD] = [*values[CHANGES_OLD], "one too many"]
    return tuple(values)


def test_a_row_the_store_refuses_is_dead_lettered_and_the_rest_stored(
    env: Env, embedded: Any
) -> None:
    topic, dlq = env.settings.topics.normalized, env.settings.topics.dead_letter
    total = 300
    producer = Producer({"bootstrap.servers": env.bootstrap})
    poison_value = b""
    for i, fields in enumerate(sample_events(total, seed=33)):
        event = AuditEvent(**fields, received_at=datetime.now(UTC))
        key = POISON_KEY if i == 150 else event.key
        value = encode(event)
        if key == POISON_KEY:
            poison_value = value
        producer.produce(topic, key=key, value=value, headers=[("trace", b"poisoned")])
    assert producer.flush(10) == 0
    del producer

    database = f"poison_{uuid.uuid4().hex[:8]}"
    embedded.command(f"CREATE DATABASE {database}")
    tables.ensure(embedded, database, 365)
    tables.ensure_accounting(embedded, database, 365, 365)
    consumer = Consumer(consumer_config(env.bootstrap, f"{env.settings.app_id}-sink"))
    config = SinkConfig(
        topic=topic,
        dead_letter_topic=dlq,
        max_rows=10_000,
        max_seconds=0.2,
        retry=RetryPolicy(initial_seconds=0.1, max_seconds=0.3),
    )
    loop = SinkLoop(
        consumer=consumer,
        writer=EventWriter(embedded, database),
        dead_letters=Producer(producer_config(env.bootstrap)),
        config=config,
        row=poisoning_row,
    )
    partitions = [TopicPartition(topic, p) for p in range(env.settings.topics.partitions)]

    def committed() -> int:
        offsets = consumer.committed(partitions, timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)

    loop.subscribe()
    try:

        def all_through() -> bool:
            loop.step()
            return loop.stats.inserted == total - 1 and loop.stats.batches >= 1

        # Old code: the batch holding the poisoned row fails forever (failed_writes climbs).
        wait_for(all_through, timeout=45, interval=0.02, what="the batch without its bad row")
        wait_for(lambda: committed() == total, timeout=20, what="the offsets")
    finally:
        consumer.close()
    stored = embedded.command(f"SELECT count() FROM `{database}`.audit_events")
    assert stored == total - 1
    assert loop.stats.dead_letter_reasons == {"store_refused": 1}

    [letter] = env.read_topic(dlq, expected=1)
    assert (letter.key(), letter.value()) == (POISON_KEY, poison_value)  # the original bytes
    headers = dict(letter.headers() or [])
    assert headers[dead_letter.PREFIX + "reason"] == b"store_refused"
    assert b"SIZES_OF_ARRAYS_DONT_MATCH" in headers[dead_letter.PREFIX + "detail"]
    assert headers["trace"] == b"poisoned"

    # The dead-letter loop stores it like any other dead letter.
    dlq_consumer = Consumer(consumer_config(env.bootstrap, f"{env.settings.app_id}-sink-dlq"))
    dead_letters = SinkLoop(
        consumer=dlq_consumer,
        writer=BatchWriter(embedded, database, DEAD_LETTERS),
        dead_letters=None,
        config=SinkConfig(topic=dlq, dead_letter_topic=dlq, max_rows=100, max_seconds=0.2),
        row=dead_letter_row,
    )
    dead_letters.subscribe()
    try:

        def recorded() -> bool:
            dead_letters.step()
            return dead_letters.stats.batches >= 1

        wait_for(recorded, interval=0.02, what="the dead letter stored")
    finally:
        dlq_consumer.close()
    [[reason, payload_size]] = embedded.query(
        f"SELECT reason, payload_size FROM `{database}`.audit_dead_letters"
    ).result_rows
    assert (reason, payload_size) == ("store_refused", len(poison_value))
