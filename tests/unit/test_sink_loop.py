"""The sink loop with a fake consumer, writer and producer: commits that fail are retried,
the consumer is polled while a write is under way, rows the table cannot keep are
dead-lettered, and every loop of the sink gets a ClickHouse client of its own."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from auditstream.sinks.batch import Batch
from auditstream.sinks.consumer import RetryPolicy, SinkConfig, SinkLoop
from auditstream.sinks.horizon import DATETIME_END, Horizon
from auditstream.sinks.rows import Record
from auditstream.sinks.tables import EVENTS
from auditstream.sinks.writer import WriteResult

TOPIC = "t.audit.events"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeMessage:
    def __init__(self, offset: int, value: bytes, partition: int = 0) -> None:
        self._offset, self._value, self._partition = offset, value, partition

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"acme:u1"

    def headers(self) -> list[tuple[str, bytes]]:
        return []


class FakeConsumer:
    def __init__(self, messages: list[FakeMessage]) -> None:
        self.queue = list(messages)
        self.polls = 0
        self.paused: set[int] = set()
        self.commits: list[list[tuple[int, int]]] = []
        self.commit_failures = 0

    def subscribe(self, topics: list[str], **kwargs: Any) -> None:
        pass

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.polls += 1
        out = [m for m in self.queue if m.partition() not in self.paused][:num_messages]
        for m in out:
            self.queue.remove(m)
        return out

    def poll(self, timeout: float) -> None:
        self.polls += 1

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {p.partition for p in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {p.partition for p in partitions}

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.commit_failures > 0:
            self.commit_failures -= 1
            raise KafkaException(KafkaError(KafkaError._WAIT_COORD))
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def close(self) -> None:
        pass


class FakeWriter:
    spec = EVENTS

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.written: list[tuple[Any, ...]] = []
        self.threads: set[int] = set()

    def write(self, batch: Batch) -> WriteResult:
        self.threads.add(threading.get_ident())
        if self.gate is not None:
            assert self.gate.wait(30)
        self.written.extend(batch.rows)
        return WriteResult(len(batch.rows), 0, 0.0)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._callbacks: list[Callable[[Any, Any], None]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})
        self._callbacks.append(kwargs["on_delivery"])

    def poll(self, timeout: float) -> int:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(None, None)
        return len(callbacks)


class Inline(Executor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def row_of(occurred_at: datetime) -> Callable[[Record], tuple[Any, ...]]:
    def row(record: Record) -> tuple[Any, ...]:
        values: list[Any] = [None] * len(EVENTS.columns)
        values[EVENTS.index_of("occurred_at")] = occurred_at
        values[EVENTS.index_of("raw_partition")] = 0
        values[EVENTS.index_of("event_id")] = uuid.uuid4()
        return tuple(values)

    return row


def make_loop(
    consumer: FakeConsumer,
    writer: FakeWriter,
    clock: Clock,
    executor: Executor | None = None,
    horizon: Horizon | None = None,
    row: Callable[[Record], tuple[Any, ...]] | None = None,
    producer: FakeProducer | None = None,
    max_rows: int = 3,
) -> SinkLoop:
    return SinkLoop(
        consumer=consumer,  # type: ignore[arg-type]
        writer=writer,  # type: ignore[arg-type]
        dead_letters=producer or FakeProducer(),  # type: ignore[arg-type]
        config=SinkConfig(
            topic=TOPIC,
            dead_letter_topic="t.dlq",
            max_rows=max_rows,
            max_seconds=60,
            retry=RetryPolicy(initial_seconds=1.0, max_seconds=4.0),
        ),
        clock=clock,
        row=row or row_of(NOW),
        horizon=horizon,
        executor=executor or Inline(),
    )


def messages(n: int) -> list[FakeMessage]:
    return [FakeMessage(i, b"{}") for i in range(n)]


def test_a_failed_commit_is_retried_and_the_loop_goes_on() -> None:
    """A broker restart: commit raises _WAIT_COORD three times; the rows are written once,
    the commit lands on the fourth try, and the loop reads on."""
    consumer, writer, clock = FakeConsumer(messages(6)), FakeWriter(), Clock()
    consumer.commit_failures = 3
    loop = make_loop(consumer, writer, clock)
    for _ in range(20):
        loop.step()
        clock.t += 5.0  # past any backoff
    assert loop.stats.failed_commits == 3
    assert len(writer.written) == 6  # each batch written once; the commit alone retried
    assert consumer.commits == [[(0, 3)], [(0, 6)]]


def test_the_consumer_is_polled_while_a_write_is_under_way() -> None:
    """A long write must not starve poll() (max.poll.interval.ms): the consumer thread
    reads the next batch, then pauses and polls on; offsets wait for the write."""
    gate = threading.Event()
    consumer, writer, clock = FakeConsumer(messages(9)), FakeWriter(gate), Clock()
    executor = ThreadPoolExecutor(1)
    loop = make_loop(consumer, writer, clock, executor=executor)
    try:
        for _ in range(3):
            loop.step()  # batch 1 read and handed to the writer, batch 2 read
        polls_before = consumer.polls
        for _ in range(50):
            loop.step()
        assert consumer.polls >= polls_before + 50
        assert consumer.paused == {0}  # the next batch is full: paused, still polling
        assert consumer.commits == []
        assert len(consumer.queue) == 3
        assert threading.get_ident() not in writer.threads
    finally:
        gate.set()
    while len(consumer.commits) < 3:
        loop.step()
    assert consumer.commits == [[(0, 3)], [(0, 6)], [(0, 9)]]
    assert consumer.paused == set()
    executor.shutdown()


@pytest.mark.parametrize(
    ("occurred_at", "reason"),
    [
        (NOW - timedelta(days=31), "outside_retention"),
        (datetime(1969, 12, 31, tzinfo=UTC), "outside_retention"),
        (DATETIME_END - timedelta(days=29), "in_future"),
        (datetime(2200, 1, 1, tzinfo=UTC), "in_future"),
    ],
)
def test_rows_the_table_cannot_keep_are_dead_lettered(occurred_at: datetime, reason: str) -> None:
    consumer, writer, clock, producer = (
        FakeConsumer(messages(1)),
        FakeWriter(),
        Clock(),
        FakeProducer(),
    )
    horizon = Horizon(lambda: 30, now=lambda: NOW)
    loop = make_loop(
        consumer, writer, clock, horizon=horizon, row=row_of(occurred_at), producer=producer,
        max_rows=1,
    )  # fmt: skip
    loop.start()
    loop.step()
    clock.t += 100  # the batch (only a dead letter) is due by age
    loop.step()
    loop.step()
    assert writer.written == []
    assert [dict(m["headers"])["auditstream.dlq.reason"] for m in producer.sent] == [
        reason.encode()
    ]
    assert loop.stats.dead_letter_reasons == {reason: 1}
    assert consumer.commits == [[(0, 1)]]  # covered: committed once Kafka has the letter


def test_rows_inside_the_horizon_are_kept_and_it_follows_a_retention_change() -> None:
    days = [30]
    horizon = Horizon(lambda: days[0], now=lambda: NOW, refresh_seconds=10, clock=Clock())
    horizon.refresh()
    assert horizon.verdict(NOW - timedelta(days=29)) is None
    assert horizon.verdict(NOW + timedelta(days=365)) is None
    assert horizon.verdict(NOW - timedelta(days=30)) == "outside_retention"
    days[0] = 90
    horizon.refresh()
    assert horizon.verdict(NOW - timedelta(days=60)) is None


class FakeClient:
    """A clickhouse-connect client that records the threads it is called from."""

    made: list[FakeClient] = []

    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.database = ""
        FakeClient.made.append(self)

    def command(self, sql: str, parameters: Any = None) -> Any:
        self.threads.add(threading.get_ident())
        if "engine_full" in sql:
            return "ReplacingMergeTree TTL toDateTime(occurred_at) + toIntervalDay(30)"
        return None

    def query(self, sql: str, parameters: Any = None) -> Any:
        self.threads.add(threading.get_ident())
        raise AssertionError("not expected here")


def test_every_loop_and_the_sql_server_get_a_client_of_their_own(tmp_path: Any) -> None:
    """Over HTTP a client is one session, which runs one query at a time: sharing one
    across threads fails with 'concurrent queries within the same session'."""
    from auditstream.config import Settings
    from auditstream.sinks import service

    FakeClient.made.clear()
    settings = Settings.from_env(
        {
            "AUDITSTREAM_HOME": str(tmp_path),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never reached: nothing subscribes
            "AUDITSTREAM_CLICKHOUSE_DSN": "http://user:secret@127.0.0.1:9/",
        }
    )
    loops, server = service.build(settings, client_factory=FakeClient)
    try:
        assert server is None  # a server's SQL is the server's: no query server of ours
        clients = [loop._writer.client for loop in loops]
        assert [loop._writer.spec.name for loop in loops] == [
            "audit_events",
            "security_alerts",
            "audit_dead_letters",
            "audit_repeats",
        ]
        assert len({id(c) for c in clients}) == len(loops) == len(FakeClient.made) == 4
        for client in clients:
            client.threads.clear()  # build() made the tables with the first, before any loop
        for loop in loops:
            loop.start()  # reads the retention on the loop's own writer thread
        events, alerts = clients[0], clients[1]
        assert events.threads
        assert alerts.threads
        assert not (events.threads & alerts.threads)
        assert threading.get_ident() not in events.threads | alerts.threads
    finally:
        for loop in loops:
            loop._executor.shutdown()
            loop._consumer.close()
