"""What the evaluation watches on Kafka: the alert topic, and how far the worker has got."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient


class AlertCollector:
    """Reads every alert on ``topic`` from the beginning, in a background thread.

    Each alert is kept with when it reached the topic: the message's create time (stamped by
    the worker when it published the alert), or the moment it was read if the broker gives
    none.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"auditstream-eval-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
        # Watermarks are asked with a second client: one client must not be used from two
        # threads at once (the reading thread blocks in consume()).
        self._meta = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"auditstream-eval-{uuid.uuid4()}"}
        )
        meta = self._meta.list_topics(topic, timeout=10).topics[topic]
        self._partitions = sorted(meta.partitions)
        self._consumer.assign([TopicPartition(topic, p, 0) for p in self._partitions])
        self._lock = threading.Lock()
        self._alerts: list[tuple[dict[str, Any], int]] = []
        self._positions: dict[int, int] = {}
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="alert-collector", daemon=True)

    def start(self) -> AlertCollector:
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                for msg in self._consumer.consume(200, timeout=0.2):
                    if msg.error() is not None:
                        continue
                    kind, stamp = msg.timestamp()
                    seen = stamp if kind != TIMESTAMP_NOT_AVAILABLE else time.time_ns() // 10**6
                    doc = orjson.loads(msg.value() or b"{}")
                    partition, offset = msg.partition(), msg.offset()
                    with self._lock:
                        self._alerts.append((doc, int(seen)))
                        if partition is not None and offset is not None:
                            self._positions[partition] = offset + 1
        except BaseException as exc:  # surfaced by alerts()/caught_up()
            self._error = exc

    def alerts(self) -> list[tuple[dict[str, Any], int]]:
        if self._error is not None:
            raise self._error
        with self._lock:
            return list(self._alerts)

    def caught_up(self) -> bool:
        """Has everything on the topic right now been read?"""
        if self._error is not None:
            raise self._error
        for p in self._partitions:
            _, high = self._meta.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=5, cached=False
            )
            with self._lock:
                if self._positions.get(p, 0) < high:
                    return False
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()
        self._meta.close()


def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int | None:
    """Messages on ``topics`` that consumer group ``group`` has not committed yet.

    None while the group has committed nothing on some partition that has messages (it has
    not started on it yet).
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        wanted: list[TopicPartition] = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            wanted += [TopicPartition(topic, p) for p in meta.partitions]
        committed = consumer.committed(wanted, timeout=10)
        lag = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10, cached=False
            )
            if tp.offset < 0:
                if high > low:
                    return None
                continue
            if high > tp.offset and _has_records(bootstrap, tp):
                lag += high - tp.offset
        return lag
    except KafkaException:
        return None
    finally:
        consumer.close()


def _has_records(bootstrap: str, tp: TopicPartition) -> bool:
    """Is there a committed record at or after ``tp.offset``? On a transactional topic the
    high watermark counts commit markers, so a caught-up group sits just below it."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lag-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        reader.assign([TopicPartition(tp.topic, tp.partition, tp.offset)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                return True
            if err.code() == err._PARTITION_EOF:
                return False
        return True  # no answer: count it as unread
    finally:
        reader.close()


def group_ready(bootstrap: str, group: str) -> bool:
    """Does ``group`` have members with partitions assigned (a stable group)?"""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except KafkaException:
        return False
    state = str(getattr(described.state, "name", described.state)).upper()
    members = described.members or []
    return state == "STABLE" and any(
        m.assignment and m.assignment.topic_partitions for m in members
    )
