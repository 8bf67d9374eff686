"""Consumer lag per group, topic and partition, from the group's committed offsets.

Lag is the partition's end offset minus the group's committed offset, as
``kafka-consumer-groups.sh --describe`` reports it. On a topic written in transactions (the
normalizer's outputs) a caught-up group shows a lag of 1 per partition written by the last
transaction: its commit marker occupies an offset. A group that never committed a partition
counts its whole retained range.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from auditstream.config import Settings


class LagError(RuntimeError):
    """Kafka did not answer; the message says which cluster."""


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


def pipeline_groups(settings: Settings) -> list[tuple[str, str, str]]:
    """(role, group, topic) of every consumer group the pipeline runs."""
    app, t = settings.app_id, settings.topics
    return [
        ("normalizer", f"{app}-normalizer", t.raw),
        ("worker", f"{app}-worker", t.normalized),
        ("sink", f"{app}-sink", t.normalized),
        ("sink", f"{app}-sink-alerts", t.alerts),
        ("sink", f"{app}-sink-dead-letters", t.dead_letter),
        ("sink", f"{app}-sink-repeats", t.repeats),
    ]


def group_lag(
    client: dict[str, Any], group: str, topics: Iterable[str], timeout: float = 10.0
) -> list[PartitionLag]:
    """Lag of ``group`` on every partition of ``topics`` (a topic that does not exist: none)."""
    consumer = Consumer(
        {
            **client,
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 0,
            "client.id": f"auditstream-lag-{uuid.uuid4().hex[:6]}",
        }
    )
    out: list[PartitionLag] = []
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                continue
            parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
            committed = consumer.committed(parts, timeout=timeout)
            for tp in committed:
                lo, hi = consumer.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=timeout
                )
                at = tp.offset if tp.offset >= 0 else None
                lag = hi - (lo if at is None else max(at, lo))
                out.append(PartitionLag(group, topic, tp.partition, at, hi, max(0, lag)))
    except KafkaException as exc:
        why = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
        raise LagError(f"cannot read consumer offsets: {why}") from None
    finally:
        consumer.close()
    return out


def pipeline_lag(settings: Settings, timeout: float = 10.0) -> list[PartitionLag]:
    client = settings.kafka.client_config()
    out: list[PartitionLag] = []
    for _, group, topic in pipeline_groups(settings):
        out.extend(group_lag(client, group, [topic], timeout))
    return out
