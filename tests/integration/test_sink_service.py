"""The sink process end to end (``auditstream sink`` as a child, on the embedded store):
all four loops, the accounting tables, and rows the store cannot keep."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer

from auditstream.producers.sample import events as sample_events
from auditstream.schemas import AuditEvent
from auditstream.schemas.codec import encode
from auditstream.stream_jobs import dead_letter

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


def source(offset: int, raw_topic: str, partition: int = 0) -> list[tuple[str, bytes]]:
    return [
        ("auditstream.source.topic", raw_topic.encode()),
        ("auditstream.source.partition", str(partition).encode()),
        ("auditstream.source.offset", str(offset).encode()),
    ]


def test_the_sink_accounts_for_every_message_it_reads(env: Env) -> None:
    topics = env.settings.topics
    raw_topic = topics.raw
    now = datetime.now(UTC).replace(microsecond=0)
    fields = list(sample_events(6, seed=9))
    shared = uuid.uuid4()

    def event(i: int, when: datetime, event_id: uuid.UUID | None = None) -> AuditEvent:
        kwargs = {**fields[i], "occurred_at": when}
        return AuditEvent(**kwargs, event_id=event_id or uuid.uuid4(), received_at=now)

    producer = Producer({"bootstrap.servers": env.bootstrap})
    stored = [event(0, now), event(1, now - timedelta(days=1)), event(2, now, shared)]
    for i, ev in enumerate(stored):
        producer.produce(
            topics.normalized, key=ev.key, value=encode(ev), headers=source(i, raw_topic)
        )
    repeat = event(2, now, shared)  # the same (tenant, id) from raw offset 10: a repeat
    producer.produce(
        topics.normalized, key=repeat.key, value=encode(repeat), headers=source(10, raw_topic)
    )
    old = event(3, now - timedelta(days=400))  # retention is 365 days
    future = event(4, datetime(2105, 12, 1, tzinfo=UTC))  # + 365 days is past 2106-02-07
    producer.produce(
        topics.normalized, key=old.key, value=encode(old), headers=source(11, raw_topic)
    )
    producer.produce(
        topics.normalized, key=future.key, value=encode(future), headers=source(12, raw_topic)
    )
    headless = event(5, now)  # no source headers: stored, position unknown
    producer.produce(topics.normalized, key=headless.key, value=encode(headless))
    producer.produce(
        topics.dead_letter,
        key=b"acme:u9",
        value=b"{not json",
        headers=dead_letter.headers(
            "invalid_json", "Expecting property name", dead_letter.Source(raw_topic, 1, 20)
        ),
    )
    producer.produce(
        topics.repeats,
        key=b"acme:u1",
        value=orjson.dumps(
            {
                "tenant_id": "acme",
                "event_id": str(uuid.uuid4()),
                "source_topic": raw_topic,
                "source_partition": 2,
                "source_offset": 30,
                "stage": "normalizer",
                "recorded_at": now.isoformat(),
            }
        ),
    )
    assert producer.flush(10) == 0

    pipeline = env.pipeline()
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= 4, what="4 events")
        wait_for(
            lambda: env.scalar("SELECT count() FROM audit_dead_letters FINAL") >= 3,
            what="3 dead letters",
        )
        wait_for(
            lambda: env.scalar("SELECT count() FROM audit_repeats FINAL") >= 2, what="2 repeats"
        )
        events = env.sql(
            "SELECT toString(event_id), raw_partition, raw_offset FROM audit_events "
            "ORDER BY raw_offset"
        )
        letters = env.sql(
            "SELECT source_topic, source_partition, source_offset, reason, failed_topic "
            "FROM audit_dead_letters FINAL ORDER BY source_offset"
        )
        repeats = env.sql(
            "SELECT source_topic, source_partition, source_offset, toString(event_id), stage "
            "FROM audit_repeats FINAL ORDER BY source_offset"
        )
        pipeline.check()  # the sink is alive
    finally:
        pipeline.stop_all()

    assert events == [
        [str(stored[0].event_id), 0, 0],
        [str(stored[1].event_id), 0, 1],
        [str(shared), 0, 2],
        [str(headless.event_id), 2**32 - 1, 2**64 - 1],
    ]
    assert letters == [
        [raw_topic, 0, 11, "outside_retention", topics.normalized],
        [raw_topic, 0, 12, "in_future", topics.normalized],
        [raw_topic, 1, 20, "invalid_json", raw_topic],
    ]
    assert repeats[0] == [raw_topic, 0, 10, str(shared), "sink"]
    assert repeats[1][:3] == [raw_topic, 2, 30]
    assert repeats[1][4] == "normalizer"
