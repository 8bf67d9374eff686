"""No row can wedge the sink: a batch the store refuses because of one row is bisected, the
other rows are stored, the refused row's original message is dead-lettered
(``store_refused``) and the offsets are committed once Kafka has it. An outage is retried,
never dead-lettered; the dead-letter loop stores a minimal row instead of dead-lettering
to itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from auditstream.sinks.consumer import RetryPolicy, SinkConfig, SinkLoop
from auditstream.sinks.rows import Record, dead_letter_row
from auditstream.sinks.tables import DEAD_LETTERS, EVENTS, TableSpec
from auditstream.sinks.writer import BatchWriter
from auditstream.stream_jobs import dead_letter

from .test_sink_loop import Clock, FakeConsumer, FakeMessage, FakeProducer, Inline

TOPIC = "t.audit.events"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
POISON = b"poison"


class Message(FakeMessage):
    def key(self) -> bytes:
        return b"key-%d" % self._offset

    def headers(self) -> list[tuple[str, bytes]]:
        return [("auditstream.source.partition", b"3"), ("trace", b"t-%d" % self._offset)]


class FakeStore:
    """A clickhouse-connect client: refuses (``refusal``) any insert holding a row that
    ``bad`` marks, stores the rest; a token seen before makes an insert a no-op."""

    def __init__(
        self,
        spec: TableSpec,
        bad: Callable[[dict[str, Any]], bool],
        refusal: Callable[[], Exception] = lambda: DataError(
            "Unable to create native array for column `raw_partition`: error"
        ),
    ) -> None:
        self.spec, self.bad, self.refusal = spec, bad, refusal
        self.rows: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.attempts = 0
        self.outages = 0
        """Inserts to refuse first with a connection error, whatever they hold."""
        self.bad_id: Callable[[Any], bool] = lambda i: False
        """Ids the identity check's query refuses (its parameters)."""

    def insert(self, table: str, data: list[Any], **kwargs: Any) -> None:
        self.attempts += 1
        if self.outages > 0:
            self.outages -= 1
            raise OperationalError("Error HTTPConnectionPool: Connection refused")
        rows = [dict(zip(kwargs["column_names"], r, strict=True)) for r in zip(*data, strict=True)]
        if any(self.bad(r) for r in rows):
            raise self.refusal()
        token = kwargs["settings"]["insert_deduplication_token"]
        if token in self.tokens:
            return
        self.tokens.append(token)
        self.rows.extend(rows)

    def query(self, sql: str, parameters: Any = None) -> Any:
        if any(self.bad_id(i) for i in (parameters or {}).get("ids", [])):
            raise DataError("Unable to serialize parameter `ids`")

        class Result:
            result_rows = [
                (r["tenant_id"], r["event_id"], r["raw_partition"], r["raw_offset"])
                for r in self.rows
            ]

        return Result()


def event(record: Record) -> tuple[Any, ...]:
    """An events row, bypassing validation: the tenant is the message's value."""
    values: list[Any] = [None] * len(EVENTS.columns)
    values[EVENTS.index_of("tenant_id")] = record.value.decode()
    values[EVENTS.index_of("event_id")] = uuid.UUID(int=record.offset + 1)
    values[EVENTS.index_of("occurred_at")] = NOW
    values[EVENTS.index_of("raw_partition")] = record.partition
    values[EVENTS.index_of("raw_offset")] = record.offset
    return tuple(values)


def loop_of(
    store: FakeStore,
    values: list[bytes],
    producer: FakeProducer | None,
    row: Callable[[Record], tuple[Any, ...]] = event,
    max_rows: int = 100,
) -> tuple[SinkLoop, FakeConsumer, Clock]:
    consumer, clock = FakeConsumer([Message(i, v) for i, v in enumerate(values)]), Clock()
    loop = SinkLoop(
        consumer=consumer,  # type: ignore[arg-type]
        writer=BatchWriter(store, "db", store.spec),
        dead_letters=producer,  # type: ignore[arg-type]
        config=SinkConfig(
            topic=TOPIC,
            dead_letter_topic="t.dlq",
            max_rows=max_rows,
            max_seconds=1,
            retry=RetryPolicy(initial_seconds=1.0, max_seconds=4.0),
        ),
        clock=clock,
        row=row,
        executor=Inline(),
    )
    return loop, consumer, clock


def run(loop: SinkLoop, clock: Clock, steps: int = 40) -> None:
    for _ in range(steps):
        loop.step()
        clock.t += 5.0  # past any backoff and batch age


def test_a_refused_row_is_dead_lettered_and_the_rest_stored_and_committed() -> None:
    values = [b"acme"] * 10
    values[6] = POISON
    store = FakeStore(EVENTS, lambda r: r["tenant_id"] == "poison")
    producer = FakeProducer()
    loop, consumer, clock = loop_of(store, values, producer)
    run(loop, clock)
    assert sorted(r["raw_offset"] for r in store.rows) == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert consumer.commits == [[(0, 10)]]
    [letter] = producer.sent
    assert letter["topic"] == "t.dlq"
    assert (letter["value"], letter["key"]) == (POISON, b"key-6")  # the original message
    headers = dict(letter["headers"])
    assert headers[dead_letter.PREFIX + "reason"] == b"store_refused"
    assert b"DataError" in headers[dead_letter.PREFIX + "detail"]
    assert headers[dead_letter.PREFIX + "offset"] == b"6"
    assert headers["trace"] == b"t-6"  # its own headers kept
    assert loop.stats.dead_letter_reasons == {"store_refused": 1}
    assert loop.stats.store_refused == 1
    assert loop.stats.inserted == 9


def test_offsets_wait_for_the_refused_rows_dead_letter() -> None:
    """Kafka not acknowledging the letter: nothing committed, the letter sent again (once
    per retry, never a new one), the good rows not inserted twice."""
    values = [b"acme", POISON, b"acme"]
    store = FakeStore(EVENTS, lambda r: r["tenant_id"] == "poison")

    class Unacked(FakeProducer):
        acking = False

        def poll(self, timeout: float) -> int:
            return super().poll(timeout) if self.acking else 0

    producer = Unacked()
    loop, consumer, clock = loop_of(store, values, producer)
    loop._config = SinkConfig(  # the test must not wait 10 s per attempt
        topic=TOPIC, dead_letter_topic="t.dlq", max_rows=100, max_seconds=1,
        dead_letter_seconds=0.05, retry=RetryPolicy(initial_seconds=1.0, max_seconds=4.0),
    )  # fmt: skip
    run(loop, clock, steps=6)
    assert consumer.commits == []
    assert loop.stats.failed_writes >= 1
    producer.acking = True
    run(loop, clock, steps=6)
    assert consumer.commits == [[(0, 3)]]
    assert {m["value"] for m in producer.sent} == {POISON}
    assert sorted(r["raw_offset"] for r in store.rows) == [0, 2]
    assert loop.stats.dead_letter_reasons == {"store_refused": 1}


def test_a_row_the_identity_check_refuses_is_dead_lettered_too() -> None:
    store = FakeStore(EVENTS, lambda r: False)
    store.bad_id = lambda i: i == uuid.UUID(int=3)  # offset 2
    producer = FakeProducer()
    loop, consumer, clock = loop_of(store, [b"acme"] * 5, producer)
    run(loop, clock)
    assert sorted(r["raw_offset"] for r in store.rows) == [0, 1, 3, 4]
    assert [m["key"] for m in producer.sent] == [b"key-2"]
    assert consumer.commits == [[(0, 5)]]


def test_an_outage_is_retried_never_dead_lettered() -> None:
    store = FakeStore(EVENTS, lambda r: False)
    store.outages = 8  # more than isolate_after
    producer = FakeProducer()
    loop, consumer, clock = loop_of(store, [b"acme"] * 5, producer)
    run(loop, clock)
    assert loop.stats.failed_writes == 8
    assert producer.sent == []
    assert len(store.rows) == 5
    assert consumer.commits == [[(0, 5)]]


def test_a_store_refusing_every_row_for_an_unknown_reason_is_not_a_bad_row() -> None:
    """Unclassified errors are bisected after repeating, but a row is refused only when
    another row of the batch went in: a store refusing all rows is retried."""
    store = FakeStore(EVENTS, lambda r: True, refusal=lambda: DatabaseError("something odd"))
    producer = FakeProducer()
    loop, consumer, clock = loop_of(store, [b"acme"] * 4, producer)
    run(loop, clock)
    assert producer.sent == []
    assert store.rows == []
    assert consumer.commits == []
    assert loop.stats.failed_writes > loop._config.isolate_after


def test_an_unknown_refusal_that_repeats_for_one_row_is_isolated() -> None:
    values = [b"acme", b"acme", POISON, b"acme"]
    store = FakeStore(
        EVENTS, lambda r: r["tenant_id"] == "poison", refusal=lambda: DatabaseError("odd")
    )
    producer = FakeProducer()
    loop, consumer, clock = loop_of(store, values, producer)
    run(loop, clock)
    assert loop.stats.failed_writes == loop._config.isolate_after  # retried first
    assert [m["value"] for m in producer.sent] == [POISON]
    assert sorted(r["raw_offset"] for r in store.rows) == [0, 1, 3]
    assert consumer.commits == [[(0, 4)]]


def test_sub_chunk_tokens_are_deterministic() -> None:
    """Two writes of the same batch (a crash before the commit): the same tokens, so the
    store takes every sub-chunk once."""
    from auditstream.sinks.batch import Batch

    store = FakeStore(EVENTS, lambda r: r["tenant_id"] == "poison")
    writer = BatchWriter(store, "db", EVENTS)
    batch = Batch(100, 1.0)
    for offset, value in enumerate([b"a", b"b", POISON, b"c", b"d"]):
        batch.add(event(Record(TOPIC, 0, offset, value, None, {})), TOPIC, 0, offset)
    first = writer.write(batch)
    tokens = list(store.tokens)
    store.rows, store.tokens = [], []  # as if the first one's rows were not found stored
    second = writer.write(batch)
    assert store.tokens == tokens
    assert [r.index for r in first.refused] == [r.index for r in second.refused] == [2]
    assert first.inserted == second.inserted == 4


def dead_letter_message(offset: int, payload: bytes) -> Record:
    return Record("t.dlq", 0, offset, payload, b"k", {})


def test_the_dead_letter_loop_stores_a_minimal_row_instead_of_dead_lettering() -> None:
    """Its refused row: payload emptied, reason kept, the refusal in the detail; no
    producer, and the rest of its batch stored."""

    class DlqMessage(FakeMessage):
        def topic(self) -> str:
            return "t.dlq"

        def headers(self) -> list[tuple[str, bytes]]:
            return [(dead_letter.PREFIX + "reason", b"unparseable")]

    store = FakeStore(DEAD_LETTERS, lambda r: r["payload"] == POISON)
    consumer, clock = FakeConsumer([DlqMessage(0, b"ok"), DlqMessage(1, POISON)]), Clock()
    loop = SinkLoop(
        consumer=consumer,  # type: ignore[arg-type]
        writer=BatchWriter(store, "db", DEAD_LETTERS),
        dead_letters=None,
        config=SinkConfig(topic="t.dlq", dead_letter_topic="t.dlq", max_rows=10, max_seconds=1),
        clock=clock,
        row=dead_letter_row,
        executor=Inline(),
    )
    run(loop, clock)
    by_offset = {r["kafka_offset"]: r for r in store.rows}
    assert sorted(by_offset) == [0, 1]
    assert by_offset[0]["payload"] == b"ok"
    minimal = by_offset[1]
    assert (minimal["payload"], minimal["key"]) == (b"", b"")
    assert minimal["reason"] == "unparseable"
    assert "store refused" in minimal["detail"]
    assert "DataError" in minimal["detail"]
    assert minimal["payload_size"] == len(POISON)
    assert consumer.commits == [[(0, 2)]]
    assert loop.stats.store_refused == 1
    assert loop.stats.dead_lettered == 0


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (DataError("Unable to create native array for column `a`: error"), "rows"),
        (
            DatabaseError(
                "HTTPDriver received ClickHouse error code 27\n Code: 27. DB::Exception: "
                "Cannot parse input: expected '\\t' (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"
            ),
            "rows",
        ),
        (DatabaseError("Code: 53. DB::Exception: Type mismatch (TYPE_MISMATCH)"), "rows"),
        (DatabaseError("Code: 321. DB::Exception: Value out of range"), "rows"),
        (DatabaseError("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)"), "outage"),
        (DatabaseError("Code: 159. DB::Exception: Timeout exceeded (TIMEOUT_EXCEEDED)"), "outage"),
        (DatabaseError("Code: 241. (MEMORY_LIMIT_EXCEEDED)"), "outage"),
        (OperationalError("Connection refused"), "outage"),
        (ConnectionResetError("reset by peer"), "outage"),
        (TimeoutError("read timed out"), "outage"),
        (DatabaseError("HTTPConnectionPool: Connection refused"), "outage"),
        (RuntimeError("simulated: connection refused"), "outage"),
        (DatabaseError("something odd"), "unknown"),
        (ValueError("invalid literal for int()"), "unknown"),
    ],
)
def test_classify(error: Exception, kind: str) -> None:
    from auditstream.sinks.writer import classify

    assert classify(error) == kind


def test_a_write_failed_without_a_kind_is_classified_by_its_message() -> None:
    from auditstream.sinks.writer import WriteFailed

    assert WriteFailed("simulated: connection refused").kind == "outage"
    assert WriteFailed("Code: 53. (TYPE_MISMATCH)").kind == "rows"
    assert WriteFailed("odd").kind == "unknown"


def test_repeat_rows_are_written_after_the_events_they_repeat() -> None:
    # Offsets 0 and 1 carry the same (tenant, event id): 0 is stored, 1 is a sink repeat.
    # If the events insert fails, no repeat row may have landed before it (review M2: a
    # stale repeat row then outlived the failure, and the replay stored that offset too).
    def same_id(record: Record) -> tuple[Any, ...]:
        row = list(event(record))
        row[EVENTS.index_of("event_id")] = uuid.UUID(int=1)
        return tuple(row)

    order: list[str] = []
    store = FakeStore(EVENTS, lambda r: False)
    store.outages = 1  # the first insert of the batch fails
    original = store.insert

    def insert(table: str, data: list[Any], **kwargs: Any) -> None:
        order.append("repeats" if "repeats" in table else "events")
        original(table, data, **kwargs)

    store.insert = insert  # type: ignore[method-assign]
    loop, consumer, clock = loop_of(store, [b"acme", b"acme"], FakeProducer(), row=same_id)
    run(loop, clock)
    assert order[0] == "events"  # the failed attempt was the events insert, no repeat first
    assert order.index("repeats") > order.index("events", 1)
    assert consumer.commits == [[(0, 2)]]
