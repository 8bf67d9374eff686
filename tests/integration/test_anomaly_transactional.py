"""The anomaly timer on a transactionally written normalized topic.

The normalized topic is written by a transactional producer: every batch ends with a commit
marker, an offset no consumer ever receives, so the high watermark stays one past the last
message. An actor who bursts and then goes quiet must still be scored: the timer must see her
partition as read to its end (position against the last stable offset, every record handed
over processed), not compare the last processed offset with the high watermark.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from auditstream.detectors.anomaly import model, training
from auditstream.detectors.anomaly.features import SqlWindow, WindowSummary
from auditstream.schemas.codec import encode
from auditstream.schemas.event import AuditEvent

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
BURST_AT = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=20)


def small_model(path: Path) -> Path:
    """A forest of ordinary hours: a few of each kind of action, no failures."""
    rng = random.Random(7)
    normal = [
        SqlWindow(
            "acme",
            f"usr_{i % 12}",
            i,
            WindowSummary(*[rng.randint(0, 6) for _ in range(11)]),
            0,
            0,
        )
        for i in range(80)
    ]
    start, end = training.training_range(NOW, 7)
    fitted = training.fit(normal, training.TrainingParams(n_estimators=50), start, end, NOW)
    model.save(fitted, path)
    return path


def _event(actor: str, at: datetime, n: int) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "tenant_id": "acme",
            "actor": {"id": actor},
            "action": "sign_in_failed",
            "resource": {"type": "session", "id": f"sess_{n}"},
            "occurred_at": at,
            "received_at": at,
            "outcome": "failure",
        }
    )


def produce_in_transactions(env: Env, topic: str, batches: list[list[AuditEvent]]) -> None:
    producer = Producer(
        {
            **env.settings.kafka.client_config(),
            "transactional.id": f"normalizer-{uuid.uuid4()}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)
    for batch in batches:
        producer.begin_transaction()
        for event in batch:
            producer.produce(topic, key=event.key, value=encode(event))
        producer.commit_transaction(30)
    assert producer.flush(10) == 0


def layout(env: Env, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition with data: (offset of the last message, high watermark)."""
    consumer = Consumer(
        {
            **env.settings.kafka.client_config(),
            "group.id": f"layout-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    out: dict[int, tuple[int, int]] = {}
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        last: dict[int, int] = {}
        empty = 0
        while empty < 3:
            messages = consumer.consume(100, timeout=1.0)
            empty = 0 if messages else empty + 1
            for m in messages:
                if m.error() is None:
                    last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
        for partition, offset in last.items():
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            out[partition] = (offset, high)
    finally:
        consumer.close()
    return out


def test_a_quiet_actor_on_a_transactional_topic_is_closed_and_scored_by_the_timer(
    env: Env, tmp_path: Path
) -> None:
    topics = env.settings.topics
    path = small_model(tmp_path / "anomaly.model")
    # trudy: 80 failed sign-ins in two transactions, then silence (no later event of hers or
    # of anyone on her partition: only the wall clock can close her window)
    burst = [_event("usr_trudy", BURST_AT + timedelta(seconds=20 * i), i) for i in range(80)]
    produce_in_transactions(env, topics.normalized, [burst[:40], burst[40:]])
    ends = layout(env, topics.normalized)
    assert len(ends) == 1
    ((last, high),) = ends.values()
    assert high == last + 2  # the final commit marker: the old rule's last + 1 never got there

    pipeline = env.pipeline()
    pipeline.env = {**pipeline.env, "AUDITSTREAM_ANOMALY_MODEL": str(path)}
    sent: list[dict[str, Any]] = []

    def anomaly_alerts() -> dict[str, dict[str, Any]]:
        messages = env.read_topic(topics.alerts, expected=1, timeout=2)
        sent[:] = [orjson.loads(m.value()) for m in messages]
        return {a["actor_id"]: a for a in sent if a["rule"] == "anomalous_activity"}

    try:
        pipeline.start("worker")
        # the worker's quiet rule (60 s of nothing delivered) and its 10 s tick come first
        alerts = wait_for(
            lambda: (found := anomaly_alerts()) and "usr_trudy" in found and found,
            timeout=180,
            interval=2,
            what="trudy's alert, closed by the timer",
        )
        pipeline.check()
    finally:
        pipeline.stop_all()

    trudy = alerts["usr_trudy"]
    assert datetime.fromisoformat(trudy["window_start"]) == BURST_AT
    assert len([a for a in sent if a["rule"] == "anomalous_activity"]) == 1
