"""What each stage could do with nothing else in the way, measured in the same run.

- ``bare_consume``: a confluent-kafka consume loop (the sink's own consumer settings) over a
  topic, touching each value and nothing more: the ceiling for any stage reading that topic.
- ``direct_insert``: the same rows the sink writes (the normalized topic's messages through
  ``sinks.rows.to_row``), inserted in batches straight into a fresh chDB store; and the same
  batches through the sink's ``BatchWriter`` (which first asks which ids are already stored).
  chDB allows one engine per process and one process per data directory, so this runs in a
  child process against its own temporary directory.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class ConsumeBaseline:
    topic: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class InsertBaseline:
    rows: int
    batch_rows: int
    convert_seconds: float
    """``to_row`` over every message (the sink's per-event Python work)."""
    insert_seconds: float
    """``client.insert`` of column-oriented batches into a fresh table."""
    writer_seconds: float
    """The sink's ``BatchWriter.write`` of the same batches (id check, then insert)."""

    @property
    def insert_rate(self) -> float:
        return self.rows / self.insert_seconds if self.insert_seconds > 0 else 0.0

    @property
    def writer_rate(self) -> float:
        return self.rows / self.writer_seconds if self.writer_seconds > 0 else 0.0

    @property
    def convert_rate(self) -> float:
        return self.rows / self.convert_seconds if self.convert_seconds > 0 else 0.0


def _reader(bootstrap: str, topic: str, partitions: int) -> tuple[Consumer, int]:
    from auditstream.sinks.consumer import consumer_config

    consumer = Consumer(consumer_config(bootstrap, f"bench-baseline-{uuid.uuid4().hex[:8]}"))
    total = 0
    assignment = []
    for p in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
        assignment.append(TopicPartition(topic, p, low))
    consumer.assign(assignment)
    return consumer, total


def topic_size(bootstrap: str, topic: str, partitions: int) -> int:
    """Messages in ``topic`` now (sum over partitions of high minus low watermark)."""
    consumer, total = _reader(bootstrap, topic, partitions)
    consumer.close()
    return total


IDLE_END_SECONDS = 2.0
"""No message for this long after the first: the topic is read to its end. (Offsets count
transaction markers, which no reader sees, so a transactional topic holds fewer messages
than its offsets say.)"""


def read_messages(
    bootstrap: str, topic: str, partitions: int, limit: int, keep: bool, timeout: float = 120.0
) -> tuple[ConsumeBaseline, list[tuple[bytes, int, int]]]:
    """Consume up to ``limit`` messages from the start of ``topic`` as fast as possible; the
    time runs from the first message to the last."""
    consumer, total = _reader(bootstrap, topic, partitions)
    wanted = min(total, limit)
    kept: list[tuple[bytes, int, int]] = []
    count = 0
    first: float | None = None
    last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while count < wanted and time.monotonic() < deadline:
            messages = consumer.consume(1000, timeout=0.5)
            if not messages and first is not None and time.perf_counter() - last > IDLE_END_SECONDS:
                break
            for message in messages:
                if message.error() is not None:
                    continue
                last = time.perf_counter()
                if first is None:
                    first = last
                value = message.value() or b""
                count += 1
                if keep:
                    kept.append((value, message.partition() or 0, message.offset() or 0))
        seconds = last - first if first is not None else 0.0
    finally:
        consumer.close()
    return ConsumeBaseline(topic, count, seconds), kept


def bare_consume(bootstrap: str, topic: str, partitions: int, limit: int) -> ConsumeBaseline:
    return read_messages(bootstrap, topic, partitions, limit, keep=False)[0]


def _insert_child(
    bootstrap: str, topic: str, partitions: int, limit: int, batch_rows: int
) -> InsertBaseline:
    import clickhouse_connect

    from auditstream.sinks import tables
    from auditstream.sinks.batch import Batch
    from auditstream.sinks.rows import to_row
    from auditstream.sinks.tables import EVENT_COLUMN_NAMES, EVENTS
    from auditstream.sinks.writer import BatchWriter

    _, messages = read_messages(bootstrap, topic, partitions, limit, keep=True)
    started = time.perf_counter()
    rows = [to_row(value, partition, offset) for value, partition, offset in messages]
    convert = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="auditstream-bench-chdb-") as path:
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        for database in ("bench_direct_1", "bench_writer_1", "bench_direct_2", "bench_writer_2"):
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            tables.ensure(client, database, 365)
        chunks = [
            (rows[i : i + batch_rows], messages[i : i + batch_rows])
            for i in range(0, len(rows), batch_rows)
        ]

        def direct(database: str) -> float:
            started = time.perf_counter()
            for chunk, _ in chunks:
                client.insert(
                    f"`{database}`.`audit_events`",
                    list(zip(*chunk, strict=True)),
                    column_names=list(EVENT_COLUMN_NAMES),
                    column_oriented=True,
                )
            return time.perf_counter() - started

        def through_writer(database: str) -> float:
            writer = BatchWriter(client, database, EVENTS)
            started = time.perf_counter()
            for chunk, source in chunks:
                batch = Batch(max_rows=batch_rows, max_seconds=1.0)
                for row, (_, partition, offset) in zip(chunk, source, strict=True):
                    batch.add(row, topic, partition, offset)
                writer.write(batch)
            return time.perf_counter() - started

        # Each twice into its own fresh table, alternating, best of two: the first insert
        # into a new store pays one-off costs that would otherwise favour whichever is second.
        times = [(direct(f"bench_direct_{n}"), through_writer(f"bench_writer_{n}")) for n in (1, 2)]
        insert = min(t[0] for t in times)
        written = min(t[1] for t in times)
        client.close()
    return InsertBaseline(len(rows), batch_rows, convert, insert, written)


def direct_insert(
    bootstrap: str, topic: str, partitions: int, limit: int, batch_rows: int
) -> InsertBaseline:
    """``_insert_child`` in a fresh (spawned) process: its own chDB engine and directory."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: Any = pool.apply(_insert_child, (bootstrap, topic, partitions, limit, batch_rows))
    return result  # type: ignore[no-any-return]
