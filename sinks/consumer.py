"""The sink loop: consume normalized events -> batch -> write -> commit.

The order is the guarantee. Offsets are committed only after the write covering them
returned; a write that fails is retried with backoff, with the partitions paused (the
consumer keeps polling, so it stays in its group) and never dropped. A crash between
write and commit means the batch is read again, and the writer makes that harmless.
On a rebalance the unwritten batch is dropped: the new owner reads it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from auditstream.sinks.batch import Batch
from auditstream.sinks.rows import UnstorableEvent, to_row
from auditstream.sinks.writer import BatchWriter, WriteFailed, WriteResult
from auditstream.stream_jobs import dead_letter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        exponent = min(max(0, attempt - 1), 64)  # a long outage must not overflow the float
        return min(self.max_seconds, self.initial_seconds * self.multiplier**exponent)


@dataclass(frozen=True)
class SinkConfig:
    topic: str
    dead_letter_topic: str
    max_rows: int = 20_000
    max_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    shutdown_write_attempts: int = 3


@dataclass
class SinkStats:
    consumed: int = 0
    inserted: int = 0
    already_stored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    failed_writes: int = 0
    last_write: WriteResult | None = None


class SinkLoop:
    def __init__(
        self,
        consumer: Consumer,
        writer: BatchWriter,
        dead_letters: Producer,
        config: SinkConfig,
        clock: Callable[[], float] = time.monotonic,
        row: Callable[[bytes, int, int], tuple[Any, ...]] = to_row,
    ) -> None:
        self._row = row
        self._consumer = consumer
        self._writer = writer
        self._dlq = dead_letters
        self._config = config
        self._clock = clock
        self._batch = self._new_batch()
        self._retry_attempt = 0
        self._retry_at: float | None = None
        self.stats = SinkStats()
        self.stopping = threading.Event()

    def _new_batch(self) -> Batch:
        return Batch(self._config.max_rows, self._config.max_seconds, self._clock)

    # -- lifecycle -------------------------------------------------------------------------
    def subscribe(self) -> None:
        self._consumer.subscribe(
            [self._config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def run(self) -> None:
        """Subscribe, step until ``stopping`` is set, write what is buffered, close."""
        self.subscribe()
        try:
            while not self.stopping.is_set():
                self.step()
            self._drain()
        finally:
            self._consumer.close()

    def step(self) -> None:
        """One turn: retry a failed write when due, or read more and write when ready."""
        if self._retry_at is not None:
            wait = self._retry_at - self._clock()
            if wait > 0:
                self._consumer.poll(min(wait, 0.2))  # paused: serves the group, reads nothing
                return
            self._write_and_commit()
            return
        room = max(1, min(1000, self._config.max_rows - len(self._batch)))
        for message in self._consumer.consume(num_messages=room, timeout=0.1):
            self._take(message)
        if self._batch.ready():
            self._write_and_commit()

    def _drain(self) -> None:
        """On shutdown: a few tries to write what is buffered; else leave it uncommitted."""
        for attempt in range(1, self._config.shutdown_write_attempts + 1):
            if self._batch.empty:
                return
            if self._write_and_commit():
                return
            time.sleep(self._config.retry.delay(attempt))
        log.warning(
            "shutting down with %d rows unwritten; they are not committed and will be "
            "read again on the next start",
            len(self._batch),
        )

    # -- steps -----------------------------------------------------------------------------
    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return
        topic, partition, offset = _coordinates(message)
        self.stats.consumed += 1
        try:
            row = self._row(message.value() or b"", partition, offset)
        except UnstorableEvent as exc:
            self._dead_letter(message, str(exc))
            self._batch.cover(topic, partition, offset)
            return
        self._batch.add(row, topic, partition, offset)

    def _dead_letter(self, message: Message, detail: str) -> None:
        source = dead_letter.Source(*_coordinates(message))
        self._dlq.produce(
            self._config.dead_letter_topic,
            key=message.key(),
            value=message.value(),
            headers=dead_letter.headers("unstorable", detail, source, _header_list(message)),
        )
        self._dlq.poll(0)
        self.stats.dead_lettered += 1

    def _write_and_commit(self) -> bool:
        batch = self._batch
        try:
            if batch.rows:
                self.stats.last_write = self._writer.write(batch)
                self.stats.inserted += self.stats.last_write.inserted
                self.stats.already_stored += self.stats.last_write.already_stored
            if self._dlq.flush(10) > 0:
                raise WriteFailed("dead-letter messages are not yet acknowledged by Kafka")
        except WriteFailed as exc:
            self._schedule_retry(exc)
            return False
        offsets = [TopicPartition(t, p, o) for t, p, o in batch.commit_offsets()]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self.stats.batches += 1
        self._batch = self._new_batch()
        if self._retry_at is not None:
            self._retry_at = None
            self._retry_attempt = 0
            self._consumer.resume(self._consumer.assignment())
            log.info("write succeeded after retries; resumed consuming")
        return True

    def _schedule_retry(self, exc: Exception) -> None:
        self.stats.failed_writes += 1
        self._retry_attempt += 1
        delay = self._config.retry.delay(self._retry_attempt)
        if self._retry_at is None:
            self._consumer.pause(self._consumer.assignment())
        self._retry_at = self._clock() + delay
        log.warning(
            "write of %d rows failed (attempt %d): %s; retrying in %.1fs, consumption paused",
            len(self._batch), self._retry_attempt, exc, delay,
        )  # fmt: skip

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [p.partition for p in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if not self._batch.empty:
            log.info("partitions revoked: dropping %d unwritten rows", len(self._batch))
        self._batch = self._new_batch()
        self._retry_at = None
        self._retry_attempt = 0


def _coordinates(message: Message) -> tuple[str, int, int]:
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("not a data message")
    return topic, partition, offset


def _header_list(message: Message) -> dead_letter.Headers:
    headers = message.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def consumer_config(
    bootstrap_servers: str, group_id: str, security: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``security``: librdkafka TLS / SASL settings (``KafkaSecurity.librdkafka()``)."""
    return {
        **(security or {}),
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "max.poll.interval.ms": 300_000,
        "session.timeout.ms": 10_000,  # a crashed sink's partitions move on quickly
        "heartbeat.interval.ms": 2_000,
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": 50,
    }


def producer_config(
    bootstrap_servers: str, security: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        **(security or {}),
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 5,
    }
