"""What reconcile reads: the raw topic, the pipeline's progress, and the store's accounting.

Kafka is read with plain confluent-kafka consumers that join no group (``assign`` only) and
commit nothing, so reconciling never moves anybody's offsets. The store is read through
``sinks.query.run``: read-only SQL, answered by the running sink when it owns the embedded
store.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from auditstream.config import ClickHouseSettings
from auditstream.integrity.reconcile import OffsetRange, Place, runs
from auditstream.sinks import query, tables
from auditstream.sinks.query import literal
from auditstream.sinks.store import StoreUnavailable

CHUNK = 200_000
"""Offsets per store query: bounds the rows one query returns."""


class SourceError(RuntimeError):
    """Kafka or the store could not be read; the message says what to do."""


@dataclass(frozen=True)
class KafkaReader:
    """Reads offsets and positions from the cluster; ``config``: librdkafka client settings."""

    config: Mapping[str, Any]
    timeout: float = 30.0

    @contextmanager
    def _consumer(self, group: str | None = None) -> Iterator[Consumer]:
        conf: dict[str, Any] = {
            **self.config,
            "group.id": group or f"auditstream-reconcile-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        consumer = Consumer(conf)
        try:
            yield consumer
        finally:
            consumer.close()

    def partitions(self, topic: str) -> list[int]:
        with self._consumer() as consumer:
            try:
                meta = consumer.list_topics(topic, timeout=self.timeout)
            except KafkaException as exc:
                raise SourceError(f"cannot reach Kafka to describe {topic}: {exc}") from None
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise SourceError(f"topic {topic} does not exist on this cluster")
            return sorted(info.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        with self._consumer() as consumer:
            try:
                lo, hi = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self.timeout
                )
            except KafkaException as exc:
                raise SourceError(f"cannot read offsets of {topic}[{partition}]: {exc}") from None
            return int(lo), int(hi)

    def offset_for_time(self, topic: str, partition: int, millis: int) -> int:
        """The first offset whose timestamp is at or after ``millis`` (end if none)."""
        with self._consumer() as consumer:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, partition, millis)], timeout=self.timeout
            )[0]
            if found.offset < 0:
                return self.watermarks(topic, partition)[1]
            return int(found.offset)

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """A group's committed offsets (None: the group never committed that partition)."""
        with self._consumer(group) as consumer:
            try:
                got = consumer.committed(
                    [TopicPartition(topic, p) for p in partitions], timeout=self.timeout
                )
            except KafkaException as exc:
                raise SourceError(f"cannot read the offsets of group {group}: {exc}") from None
            return {
                tp.partition: (None if tp.offset == OFFSET_INVALID or tp.offset < 0 else tp.offset)
                for tp in got
            }

    def message_offsets(self, topic: str, rng: OffsetRange) -> list[int]:
        """Offsets in ``rng`` that hold a (committed) message: control records and aborted
        transactions are skipped, as every consumer of ours skips them."""
        out: list[int] = []
        if rng.hi <= rng.lo:
            return out
        _, high = self.watermarks(topic, rng.partition)
        end = min(rng.hi, high)
        with self._consumer() as consumer:
            consumer.assign([TopicPartition(topic, rng.partition, rng.lo)])
            deadline = time.monotonic() + self.timeout
            while True:
                batch = consumer.consume(num_messages=10_000, timeout=1.0)
                progressed = False
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            return out
                        raise SourceError(f"reading {topic}[{rng.partition}]: {err}")
                    offset = msg.offset()
                    if offset is None:
                        continue
                    progressed = True
                    if offset >= end:
                        return out
                    out.append(offset)
                position = consumer.position([TopicPartition(topic, rng.partition)])[0].offset
                if position >= end:
                    return out
                if progressed:
                    deadline = time.monotonic() + self.timeout
                elif time.monotonic() > deadline:
                    raise SourceError(
                        f"reading {topic}[{rng.partition}] stalled at offset {position} "
                        f"(range ends at {end}); is the broker up?"
                    )

    def messages_at(
        self, topic: str, partition: int, offsets: list[int]
    ) -> dict[int, tuple[bytes | None, Any]]:
        """The value and headers of the messages at ``offsets`` (few: the missing ones)."""
        out: dict[int, tuple[bytes | None, Any]] = {}
        wanted = set(offsets)
        if not wanted:
            return out
        with self._consumer() as consumer:
            for lo, hi in runs(sorted(wanted)):
                consumer.assign([TopicPartition(topic, partition, lo)])
                deadline = time.monotonic() + self.timeout
                done = False
                while not done and time.monotonic() < deadline:
                    for msg in consumer.consume(num_messages=1000, timeout=1.0):
                        offset = msg.offset()
                        if msg.error() is not None or offset is None:
                            done = done or msg.error() is not None  # end of the partition
                            continue
                        if offset in wanted:
                            out[offset] = (msg.value(), msg.headers())
                        done = done or offset >= hi
        return out

    def unread(self, group: str, topic: str) -> int:
        """Messages of ``topic`` that ``group`` has not consumed yet (0: it is caught up).

        Reads from the group's committed offsets to the end: a transactional topic's high
        watermark counts commit markers, so comparing offsets alone would never reach 0.
        """
        parts = self.partitions(topic)
        committed = self.committed(group, topic, parts)
        count = 0
        for p in parts:
            lo, hi = self.watermarks(topic, p)
            start = committed.get(p)
            start = lo if start is None else max(start, lo)
            if start < hi:
                count += len(self.message_offsets(topic, OffsetRange(p, start, hi)))
        return count


@dataclass(frozen=True)
class StoreReader:
    """Which raw offsets the store accounts for, per place, through read-only SQL."""

    settings: ClickHouseSettings
    raw_topic: str

    def _counts(self, sql: str) -> Counter[int]:
        try:
            result = query.run(self.settings, sql)
        except (query.QueryError, StoreUnavailable) as exc:
            raise SourceError(f"the store refused the reconcile query: {exc}") from None
        return Counter({int(row[0]): int(row[1]) for row in result.rows})

    def places(self, rng: OffsetRange) -> dict[Place, Counter[int]]:
        out: dict[Place, Counter[int]] = {p: Counter() for p in Place}
        topic = literal(self.raw_topic)
        for lo in range(rng.lo, rng.hi, CHUNK):
            hi = min(rng.hi, lo + CHUNK)
            where = f"BETWEEN {lo} AND {hi - 1}"
            out[Place.STORED].update(
                self._counts(
                    "SELECT raw_offset, count() FROM audit_events "
                    f"WHERE raw_partition = {rng.partition} AND raw_offset {where} "
                    "GROUP BY raw_offset"
                )
            )
            out[Place.DEAD_LETTER].update(
                self._counts(
                    "SELECT source_offset, count() FROM audit_dead_letters FINAL "
                    f"WHERE source_topic = {topic} AND source_partition = {rng.partition} "
                    f"AND source_offset {where} GROUP BY source_offset"
                )
            )
            out[Place.REPEAT].update(
                self._counts(
                    "SELECT source_offset, count() FROM audit_repeats FINAL "
                    f"WHERE source_topic = {topic} AND source_partition = {rng.partition} "
                    f"AND source_offset {where} GROUP BY source_offset"
                )
            )
        return out

    def retention_days(self) -> int | None:
        """The events table's TTL in days as the store has it (None: no TTL)."""
        try:
            rows = query.run(
                self.settings,
                "SELECT engine_full FROM system.tables WHERE database = "
                f"{literal(self.settings.database)} AND name = 'audit_events'",
            ).rows
        except (query.QueryError, StoreUnavailable) as exc:
            raise SourceError(f"the store refused the reconcile query: {exc}") from None
        return tables.parse_retention_days(str(rows[0][0])) if rows else None

    def dead_letter_reasons(self, rng: OffsetRange) -> dict[str, int]:
        try:
            result = query.run(
                self.settings,
                "SELECT reason, count() FROM audit_dead_letters FINAL "
                f"WHERE source_topic = {literal(self.raw_topic)} "
                f"AND source_partition = {rng.partition} "
                f"AND source_offset BETWEEN {rng.lo} AND {max(rng.lo, rng.hi - 1)} "
                "GROUP BY reason ORDER BY reason",
            )
        except (query.QueryError, StoreUnavailable) as exc:
            raise SourceError(f"the store refused the reconcile query: {exc}") from None
        return {str(r[0]): int(r[1]) for r in result.rows}
