"""The transactional normalizer loop, step by step, against an in-memory fake broker.

The fake keeps what a transactional broker keeps: committed records and committed group
offsets change only when a transaction commits; an aborted one leaves no trace. Failures
are scripted per call, so every abort / retry / fenced path runs deterministically.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from auditstream.config import NormalizerSettings, Settings, Topics
from auditstream.infra.ratelog import RateLimitedLog
from auditstream.stream_jobs import dead_letter
from auditstream.stream_jobs.normalize import Duplicate, Normalizer
from auditstream.stream_jobs.normalizer import (
    MESSAGE_MAX_BYTES,
    LoopConfig,
    NormalizerError,
    NormalizerLoop,
    Processor,
    build_processor,
)
from auditstream.stream_jobs.outputs import (
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_SIZE,
    DLQ_TRUNCATED,
    RECORD_OVERHEAD,
    REPEAT_KEY_SHA256,
    REPEAT_ORIGINAL_KEY_SIZE,
    Record,
    Router,
    Source,
    headers_size,
)
from auditstream.stream_jobs.staged_ids import StagedRecentIds

RAW = "raw"
TOPICS = Topics(raw=RAW, normalized="out", dead_letter="dlq", alerts="alerts", repeats="rep")
NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


# -- the fake broker --------------------------------------------------------------------
@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None = None
    _error: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Cluster:
    """What the broker holds: raw messages, committed records and offsets."""

    clock: Clock
    partitions: int = 2
    raw: dict[int, list[FakeMessage]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)
    failures: dict[str, list[KafkaError]] = field(default_factory=dict)
    """Errors the next calls of an operation raise, in order."""
    rebalance_at_consume: set[int] = field(default_factory=set)
    """Consume calls (counted from 1) that start with a revoke + assign."""
    consumes: int = 0
    producers: int = 0
    consumers: int = 0
    aborts: int = 0
    seek_fails: int = 0
    hang_send_offsets: set[int] = field(default_factory=set)
    """Producer generations whose send_offsets_to_transaction never returns."""
    poison: set[tuple[int, int]] = field(default_factory=set)
    """(partition, offset) of raw messages whose non-dead-letter output the broker rejects
    at commit (an abortable error, as a failed delivery gives)."""

    def append(self, partition: int, value: bytes | None, key: bytes | None = b"k") -> None:
        log = self.raw.setdefault(partition, [])
        log.append(FakeMessage(RAW, partition, len(log), key, value))

    def fail(self, op: str, *errors: KafkaError) -> None:
        self.failures.setdefault(op, []).extend(errors)

    def maybe_fail(self, op: str) -> None:
        pending = self.failures.get(op)
        if pending:
            raise KafkaException(pending.pop(0))

    def sources(self) -> list[tuple[int, int]]:
        """(partition, offset) of every committed record, from its source headers."""
        out = []
        for record in self.records:
            h = dict(record.headers)
            assert h["auditstream.source.topic"] == RAW.encode()
            out.append(
                (int(h["auditstream.source.partition"]), int(h["auditstream.source.offset"]))
            )
        return sorted(out)

    def all_raw(self) -> list[tuple[int, int]]:
        return sorted((p, m.offset() or 0) for p, log in self.raw.items() for m in log)


class FakeConsumer:
    def __init__(self, cluster: Cluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.positions: dict[int, int] = {}
        self.callbacks: dict[str, Any] = {}
        self.closed = False
        cluster.consumers += 1

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        assert topics == [RAW]
        self.callbacks = callbacks

    def _assign(self) -> None:
        parts = [TopicPartition(RAW, p) for p in range(self.cluster.partitions)]
        self.positions = {
            p: self.cluster.committed.get(p, 0) for p in range(self.cluster.partitions)
        }
        self.callbacks["on_assign"](self, parts)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.cluster.consumes += 1
        if not self.positions:
            self._assign()
        elif self.cluster.consumes in self.cluster.rebalance_at_consume:
            self.callbacks["on_revoke"](self, [])
            self._assign()
        out: list[FakeMessage] = []
        for p in sorted(self.positions):  # one message per partition per round, in turn
            log = self.cluster.raw.get(p, [])
            if self.positions[p] < len(log) and len(out) < num_messages:
                out.append(log[self.positions[p]])
                self.positions[p] += 1
        if not out:
            self.cluster.clock.t += max(timeout, 0.0)
        return out

    def seek(self, partition: TopicPartition) -> None:
        if self.cluster.seek_fails:
            self.cluster.seek_fails -= 1
            raise KafkaException(KafkaError(KafkaError._STATE))
        self.positions[partition.partition] = partition.offset

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        self.cluster.maybe_fail("committed")
        return [
            TopicPartition(tp.topic, tp.partition, self.cluster.committed.get(tp.partition, -1001))
            for tp in partitions
        ]

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    def __init__(self, cluster: Cluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.in_txn = False
        self.pending: list[Record] = []
        self.pending_offsets: list[TopicPartition] = []
        self.fenced = False
        cluster.producers += 1
        self.generation = cluster.producers

    def _live(self) -> None:
        if self.fenced or self.generation != self.cluster.producers:
            raise KafkaException(KafkaError(KafkaError._FENCED, fatal=True))

    def init_transactions(self, timeout: float = -1) -> None:
        self.cluster.maybe_fail("init")

    def begin_transaction(self) -> None:
        self._live()
        assert not self.in_txn, "a transaction is already open"
        self.in_txn = True

    def produce(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any
    ) -> None:
        self._live()
        assert self.in_txn
        assert (
            len(key or b"") + len(value or b"") + headers_size(kw["headers"]) <= MESSAGE_MAX_BYTES
        )
        self.cluster.maybe_fail("produce")
        self.pending.append(Record(topic, key, value or b"", kw["headers"]))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self._live()
        assert self.in_txn
        assert group_metadata == "group-metadata"
        self.cluster.maybe_fail("send_offsets")
        if self.generation in self.cluster.hang_send_offsets:
            threading.Event().wait(5)  # librdkafka#5456: blocks past its timeout
        self.pending_offsets = positions

    def commit_transaction(self, timeout: float = -1) -> None:
        self._live()
        assert self.in_txn
        self.cluster.maybe_fail("commit")
        for record in self.pending:
            h = dict(record.headers)
            where = (int(h["auditstream.source.partition"]), int(h["auditstream.source.offset"]))
            if record.topic != "dlq" and where in self.cluster.poison:
                raise KafkaException(abortable(KafkaError.INVALID_RECORD))
        self.cluster.records.extend(self.pending)
        for tp in self.pending_offsets:
            assert tp.topic == RAW
            self.cluster.committed[tp.partition] = tp.offset
        self._reset()

    def abort_transaction(self, timeout: float = -1) -> None:
        self._live()
        self.cluster.maybe_fail("abort")
        self.cluster.aborts += 1
        self._reset()

    def _reset(self) -> None:
        self.in_txn = False
        self.pending = []
        self.pending_offsets = []

    def flush(self, timeout: float = -1) -> int:
        return 0


def event(event_id: uuid.UUID | None = None, **overrides: Any) -> bytes:
    document: dict[str, Any] = {
        "event_id": str(event_id or uuid.uuid4()),
        "occurred_at": "2026-05-06T09:00:00Z",
        "tenant_id": "acme",
        "actor": {"id": "u1"},
        "action": "delete",
        "resource": {"type": "task", "id": "t1"},
        **overrides,
    }
    return orjson.dumps(document)


@dataclass
class Rig:
    cluster: Cluster
    loop: NormalizerLoop
    recent: StagedRecentIds
    stop_after: int = 10_000
    steps: int = 0

    def stop(self) -> bool:
        return self.steps >= self.stop_after

    def run(self, steps: int) -> None:
        """``steps`` turns of the loop (a turn with nothing to read costs one poll)."""
        if self.loop._producer is None:
            self.loop.open(lambda: False)
        for _ in range(steps):
            self.loop.step(lambda: False)
        self.steps += steps


def rig(
    max_events: int = 4, partitions: int = 2, stop_grace: float = 10.0, stuck_after: float = 30.0
) -> Rig:
    clock = Clock()
    cluster = Cluster(clock, partitions)
    recent = StagedRecentIds(600.0, 10_000, clock=clock)
    config = LoopConfig(
        raw_topic=RAW, group_id="g", transactional_id="g-0", max_events=max_events,
        max_seconds=0.1, client={"bootstrap.servers": "fake:9092"}, stop_grace=stop_grace,
        stuck_after=stuck_after,
    )  # fmt: skip
    process = Processor(
        Normalizer(65_536, recent, now=lambda: NOW), Router(TOPICS, MESSAGE_MAX_BYTES, lambda: NOW)
    )
    loop = NormalizerLoop(
        config,
        process,
        recent,
        consumer_factory=lambda conf: FakeConsumer(cluster, conf),
        producer_factory=lambda conf: FakeProducer(cluster, conf),
        say=lambda line: None,
        clock=clock,
    )
    return Rig(cluster, loop, recent)


def by_topic(cluster: Cluster) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in cluster.records:
        out[r.topic] = out.get(r.topic, 0) + 1
    return out


def abortable(code: int = KafkaError._TIMED_OUT) -> KafkaError:
    return KafkaError(code, "txn aborted", txn_requires_abort=True)


def retriable() -> KafkaError:
    return KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True)


# -- the loop ---------------------------------------------------------------------------
def test_every_raw_offset_ends_in_exactly_one_topic_with_source_headers() -> None:
    r = rig()
    repeated = uuid.uuid4()
    r.cluster.append(0, event(repeated))
    r.cluster.append(0, event(repeated))  # a repeat of the one before
    r.cluster.append(1, b"not json")
    for _ in range(5):
        r.cluster.append(1, event())
    r.run(5)
    assert r.cluster.sources() == r.cluster.all_raw()
    assert by_topic(r.cluster) == {"out": 6, "dlq": 1, "rep": 1}
    assert r.cluster.committed == {0: 2, 1: 6}
    assert r.loop.stats.normalized == 6
    assert r.loop.stats.dead_lettered == 1
    assert r.loop.stats.repeats == 1
    assert r.loop.stats.reasons == {"invalid_json": 1}


def test_consumer_and_producer_settings_are_transactional() -> None:
    r = rig()
    r.run(1)
    producer = r.loop._producer
    consumer = r.loop._consumer
    assert isinstance(producer, FakeProducer)
    assert isinstance(consumer, FakeConsumer)
    assert producer.config["transactional.id"] == "g-0"
    assert producer.config["message.max.bytes"] == MESSAGE_MAX_BYTES
    assert consumer.config["isolation.level"] == "read_committed"
    assert consumer.config["enable.auto.commit"] is False
    assert consumer.config["group.id"] == "g"


def test_from_settings_names_the_group_reconcile_reads() -> None:
    settings = Settings.from_env(
        {"AUDITSTREAM_APP_ID": "app", "AUDITSTREAM_NORMALIZER_INSTANCE": "b2"}
    )
    config = LoopConfig.from_settings(settings)
    assert config.group_id == "app-normalizer"
    assert config.transactional_id == "app-normalizer-b2"
    assert config.raw_topic == settings.topics.raw


def test_an_abort_rewinds_and_forgets_the_ids_of_the_aborted_batch() -> None:
    r = rig(max_events=4)
    for _ in range(4):
        r.cluster.append(0, event())
    r.cluster.fail("commit", abortable())
    r.run(1)  # the first transaction aborts
    assert r.cluster.aborts == 1
    assert r.cluster.records == []
    assert r.cluster.committed == {}
    assert len(r.recent) == 0  # nothing of the aborted batch is remembered
    r.run(1)  # the same messages again: normalized, not mistaken for repeats
    assert by_topic(r.cluster) == {"out": 4}
    assert r.cluster.sources() == r.cluster.all_raw()
    assert len(r.recent) == 4
    assert r.recent.staged == 0


def test_without_rollback_an_abort_would_turn_events_into_repeats() -> None:
    """What the staged window prevents: the bare window remembers at check time."""
    r = rig(max_events=4)
    for _ in range(2):
        r.cluster.append(0, event())
    r.cluster.fail("commit", abortable())
    r.recent.rollback = lambda: None  # type: ignore[method-assign]
    r.run(2)
    assert by_topic(r.cluster) == {"rep": 2}  # both events lost as "repeats"


def test_a_repeat_of_a_committed_event_stays_a_repeat_after_an_abort() -> None:
    r = rig(max_events=2)
    kept = uuid.uuid4()
    r.cluster.append(0, event(kept))
    r.run(1)  # committed
    r.cluster.append(0, event(kept))
    r.cluster.append(0, event())
    r.cluster.fail("send_offsets", abortable())
    r.run(2)  # aborted, then redone
    assert by_topic(r.cluster) == {"out": 2, "rep": 1}
    repeat = next(rec for rec in r.cluster.records if rec.topic == "rep")
    assert orjson.loads(repeat.value)["event_id"] == str(kept)
    assert r.cluster.sources() == r.cluster.all_raw()


def test_retriable_commit_errors_are_retried_in_the_same_transaction() -> None:
    r = rig()
    r.cluster.append(0, event())
    r.cluster.fail("commit", retriable(), retriable())
    r.cluster.fail("send_offsets", retriable())
    r.run(1)
    assert r.cluster.aborts == 0
    assert by_topic(r.cluster) == {"out": 1}
    assert r.loop.stats.committed_batches == 1


def test_an_abort_that_times_out_is_retried() -> None:
    r = rig()
    r.cluster.append(0, event())
    r.cluster.fail("commit", abortable())
    r.cluster.fail("abort", retriable())
    r.run(2)
    assert r.cluster.aborts == 1
    assert r.cluster.sources() == r.cluster.all_raw()


def test_a_fatal_error_recreates_the_producer_and_redoes_the_batch() -> None:
    r = rig()
    for _ in range(3):
        r.cluster.append(1, event())
    r.cluster.fail("commit", KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    r.run(2)
    assert r.cluster.producers == 2
    assert r.loop.stats.producers_recreated == 1
    assert by_topic(r.cluster) == {"out": 3}
    assert r.cluster.sources() == r.cluster.all_raw()


def test_a_stuck_send_offsets_replaces_the_producer_and_redoes_the_batch() -> None:
    r = rig(stuck_after=0.2)
    for _ in range(3):
        r.cluster.append(0, event())
    r.cluster.hang_send_offsets = {1}  # the first producer hangs, as after a broker restart
    r.run(2)
    assert r.cluster.producers == 2
    assert r.loop.abandoned == 1
    assert by_topic(r.cluster) == {"out": 3}
    assert r.cluster.sources() == r.cluster.all_raw()


class CommitThenHang(FakeProducer):
    """The first producer's EndTxn reached the coordinator (the transaction is committed),
    but the answer never came back: the call blocks past ``stuck_after``."""

    def commit_transaction(self, timeout: float = -1) -> None:
        if self.generation == 1:
            self.cluster.records.extend(self.pending)
            for tp in self.pending_offsets:
                self.cluster.committed[tp.partition] = tp.offset
            threading.Event().wait(2)
            return
        super().commit_transaction(timeout)


def test_a_commit_applied_then_hung_is_not_redone() -> None:
    r = rig(stuck_after=0.2)
    r.loop._producer_factory = lambda conf: CommitThenHang(r.cluster, conf)
    kept = uuid.uuid4()
    r.cluster.append(0, event(kept))
    for _ in range(2):
        r.cluster.append(0, event())
    r.run(3)  # the commit hangs; the new producer finds it applied
    assert r.cluster.producers == 2
    assert r.loop.abandoned == 1
    assert r.cluster.sources() == r.cluster.all_raw()  # each offset once, not twice
    assert by_topic(r.cluster) == {"out": 3}
    assert r.loop.stats.normalized == 3
    r.cluster.append(0, event(kept))  # the committed batch's ids are still remembered
    r.run(1)
    assert by_topic(r.cluster) == {"out": 3, "rep": 1}


def test_a_commit_that_hung_before_applying_is_redone() -> None:
    r = rig(stuck_after=0.2)
    for _ in range(3):
        r.cluster.append(0, event())
    r.cluster.hang_send_offsets = {1}
    r.run(2)
    assert r.cluster.sources() == r.cluster.all_raw()
    assert len(r.recent) == 3
    assert r.recent.staged == 0


def twin(r: Rig) -> NormalizerLoop:
    """A second loop with the same instance id on the same broker."""
    config = r.loop.config
    recent = StagedRecentIds(600.0, 10_000, clock=r.cluster.clock)
    process = Processor(
        Normalizer(65_536, recent, now=lambda: NOW), Router(TOPICS, MESSAGE_MAX_BYTES, lambda: NOW)
    )
    return NormalizerLoop(
        config,
        process,
        recent,
        consumer_factory=lambda conf: FakeConsumer(r.cluster, conf),
        producer_factory=lambda conf: FakeProducer(r.cluster, conf),
        say=lambda line: None,
        clock=r.cluster.clock,
    )


def test_two_instances_with_one_id_stop_fencing_each_other() -> None:
    r = rig(max_events=2)
    for _ in range(20):
        r.cluster.append(0, event())
    other = twin(r)
    r.loop.open(lambda: False)
    other.open(lambda: False)  # fences the first

    def alternate() -> None:
        for _ in range(10):
            r.loop.step(lambda: False)
            other.step(lambda: False)

    with pytest.raises(NormalizerError) as raised:
        alternate()
    assert str(raised.value) == (
        "normalizer instance id 0 is in use by another running process; "
        "give each one its own AUDITSTREAM_NORMALIZER_INSTANCE"
    )
    assert r.cluster.producers <= 4  # found out on the second fence, not after a storm
    assert r.cluster.sources() == sorted(set(r.cluster.sources()))  # nothing twice


class FlushFenced(FakeProducer):
    def flush(self, timeout: float = -1) -> int:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


def test_the_instance_id_sentence_survives_closing_a_fenced_producer() -> None:
    r = rig(max_events=2)
    r.loop._producer_factory = lambda conf: FlushFenced(r.cluster, conf)
    for _ in range(10):
        r.cluster.append(0, event())
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    r.cluster.fail("commit", fenced, fenced)
    with pytest.raises(NormalizerError, match="in use by another running process"):
        r.loop.run(lambda: False)


def test_fences_far_apart_are_survived() -> None:
    r = rig()
    r.cluster.append(0, event())
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    r.cluster.fail("commit", fenced)
    r.run(1)
    r.cluster.clock.t += 3600.0  # an hour later, again (a transaction timed out, say)
    r.cluster.append(0, event())
    r.cluster.fail("commit", fenced)
    r.run(2)
    assert r.cluster.producers == 3
    assert r.cluster.sources() == r.cluster.all_raw()


def test_a_static_consumer_fenced_twice_in_a_row_stops_the_loop() -> None:
    r = rig()
    r.run(1)
    err = KafkaError(  # as librdkafka reports it on a message
        KafkaError._FATAL,
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
    )
    r.loop._consumer_error(err)  # once: a new consumer
    assert r.cluster.consumers == 2
    with pytest.raises(NormalizerError, match="in use by another running process"):
        r.loop._consumer_error(err)


def test_a_failed_produce_aborts_and_redoes_the_batch() -> None:
    r = rig()
    for _ in range(3):
        r.cluster.append(0, event())
    r.cluster.fail("produce", KafkaError(KafkaError._STATE, "bad state"))
    r.run(2)
    assert r.cluster.aborts == 1
    assert r.cluster.sources() == r.cluster.all_raw()


def test_a_repeat_with_a_huge_key_does_not_wedge_the_loop() -> None:
    r = rig()
    kept = uuid.uuid4()
    big = b"K" * 1_040_000  # the broker accepts up to 1,048,588 bytes
    r.cluster.append(0, event(kept))
    r.cluster.append(0, event(kept), key=big)
    r.cluster.append(0, event())
    r.run(4)
    assert r.cluster.aborts == 0
    assert r.cluster.sources() == r.cluster.all_raw()
    repeat = next(rec for rec in r.cluster.records if rec.topic == "rep")
    assert repeat.key == hashlib.sha256(big).hexdigest().encode()
    assert dict(repeat.headers)[REPEAT_KEY_SHA256] == b"true"
    assert dict(repeat.headers)[REPEAT_ORIGINAL_KEY_SIZE] == b"1040000"


def test_a_record_the_producer_refuses_is_dead_lettered_not_aborted() -> None:
    r = rig()
    for _ in range(3):
        r.cluster.append(0, event())
    r.cluster.fail("produce", KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
    r.run(2)
    assert r.cluster.aborts == 0
    assert r.cluster.sources() == r.cluster.all_raw()
    assert by_topic(r.cluster) == {"dlq": 1, "out": 2}
    (dlq,) = [rec for rec in r.cluster.records if rec.topic == "dlq"]
    assert dead_letter.read(dlq.headers)["reason"] == "unproducible"
    assert dead_letter.read(dlq.headers)["offset"] == "0"


def test_a_batch_that_keeps_aborting_is_split_and_the_culprit_dead_lettered() -> None:
    r = rig(max_events=8, partitions=1)
    for _ in range(8):
        r.cluster.append(0, event())
    r.cluster.poison = {(0, 5)}
    r.run(40)
    assert r.cluster.sources() == r.cluster.all_raw()
    assert by_topic(r.cluster) == {"out": 7, "dlq": 1}
    (dlq,) = [rec for rec in r.cluster.records if rec.topic == "dlq"]
    assert dead_letter.read(dlq.headers)["reason"] == "unproducible"
    assert dead_letter.read(dlq.headers)["offset"] == "5"
    assert dlq.value == r.cluster.raw[0][5].value()  # the raw message, as read
    r.cluster.append(0, event())
    r.cluster.append(0, event())
    r.run(2)  # the batch size is back to normal: both in one transaction
    assert r.cluster.committed == {0: 10}


def test_an_outage_never_gets_a_message_dead_lettered() -> None:
    r = rig(max_events=4, partitions=1)
    for _ in range(4):
        r.cluster.append(0, event())
    r.cluster.fail("commit", *[abortable()] * 60)  # timeouts: the broker is away
    r.run(62)
    assert by_topic(r.cluster) == {"out": 4}


def test_every_record_the_router_builds_fits_the_producer() -> None:
    huge = b"K" * 1_040_000
    dup = Duplicate(str(uuid.uuid4()), "acme")
    record = ROUTER(dup, SOURCE, huge, b"{}", [])
    assert len(record.key or b"") + len(record.value) + headers_size(record.headers) <= (
        MESSAGE_MAX_BYTES - RECORD_OVERHEAD
    )
    small = ROUTER(dup, SOURCE, b"acme:u1", b"{}", [])
    assert small.key == b"acme:u1"
    assert REPEAT_KEY_SHA256 not in dict(small.headers)


def test_a_rebalance_during_fill_drops_the_unprocessed_batch() -> None:
    r = rig(max_events=6)
    for n in range(6):
        r.cluster.append(n % 2, event())
    r.cluster.rebalance_at_consume = {3}  # mid-batch: revoke + assign from committed
    r.run(3)
    assert r.cluster.sources() == r.cluster.all_raw()
    assert by_topic(r.cluster) == {"out": 6}


def test_a_failed_seek_makes_a_new_consumer_from_the_committed_offsets() -> None:
    r = rig(max_events=2)
    for _ in range(4):
        r.cluster.append(0, event())
    r.run(1)  # offsets 0-1 committed
    r.cluster.fail("commit", abortable())
    r.cluster.seek_fails = 1
    r.run(3)
    assert r.cluster.consumers == 2
    assert r.cluster.sources() == r.cluster.all_raw()


def test_a_bug_in_the_step_dead_letters_the_message() -> None:
    def broken(raw: bytes | None, headers: Any) -> Any:
        raise RuntimeError("boom")

    process = Processor(broken, Router(TOPICS, MESSAGE_MAX_BYTES, lambda: NOW))
    record = process([FakeMessage(RAW, 0, 7, b"k", b"{}")])[0]
    assert record.topic == "dlq"
    assert dead_letter.read(record.headers)["reason"] == "internal_error"
    assert dict(record.headers)["auditstream.source.offset"] == b"7"


def test_stop_commits_the_partial_batch_and_closes() -> None:
    r = rig(max_events=100)
    for _ in range(3):
        r.cluster.append(0, event())
    # the fake hands out one message of a partition per consume: stop after the second
    stats = r.loop.run(lambda: r.cluster.consumes >= 2)
    assert stats.normalized == 2
    assert r.cluster.committed == {0: 2}
    assert r.loop._consumer is None


def test_stopping_during_an_outage_aborts_after_the_grace_period() -> None:
    r = rig(stop_grace=0.0)  # the grace period runs on the wall clock: none here
    r.cluster.append(0, event())
    r.cluster.fail("commit", *[retriable()] * 10_000)
    r.loop.open(lambda: False)
    r.loop.step(lambda: r.cluster.consumes > 0)  # stop requested once the batch is read
    assert r.cluster.aborts == 1
    assert r.cluster.committed == {}


def test_init_retries_while_the_broker_is_away_then_says_one_line() -> None:
    r = rig()
    r.cluster.fail("init", retriable(), retriable())
    lines: list[str] = []
    r.loop._say = lines.append
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    r.loop.run(stop)
    assert len(lines) == 2  # the start line, then the summary
    assert "fake:9092" in lines[0]


def test_a_refused_producer_is_one_error_not_a_traceback() -> None:
    r = rig()
    r.cluster.fail("init", KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    with pytest.raises(NormalizerError, match="refused the transactional producer"):
        r.loop.run(lambda: False)


def test_build_processor_is_the_one_normalizer_call_site() -> None:
    settings = Settings.from_env({})
    recent = StagedRecentIds(60.0, 100)
    process = build_processor(settings, recent)
    record = process([FakeMessage(settings.topics.raw, 0, 0, b"k", event())])[0]
    assert record.topic == settings.topics.normalized
    assert recent.staged == 1
    assert NormalizerSettings().transaction_max_events >= 1


# -- routing and sizes -----------------------------------------------------------------
ROUTER = Router(TOPICS, MESSAGE_MAX_BYTES, lambda: NOW)
SOURCE = Source(RAW, 2, 41)


def test_a_repeat_record_carries_the_contract_fields() -> None:
    r = rig()
    kept = uuid.uuid4()
    r.cluster.append(0, event(kept), key=b"acme:u1")
    r.cluster.append(0, event(kept), key=b"acme:u1")
    r.run(1)
    repeat = next(rec for rec in r.cluster.records if rec.topic == "rep")
    assert repeat.key == b"acme:u1"
    assert orjson.loads(repeat.value) == {
        "tenant_id": "acme",
        "event_id": str(kept),
        "source_topic": RAW,
        "source_partition": 0,
        "source_offset": 1,
        "stage": "normalizer",
        "recorded_at": "2026-05-06T07:08:09.000Z",
    }


def test_dead_letters_keep_original_bytes_and_headers() -> None:
    record = ROUTER.dead_letter(
        "invalid_json", "not JSON", SOURCE, b"k", b"{oops", [("trace", b"abc"), ("x", None)]
    )
    assert (record.topic, record.key, record.value) == ("dlq", b"k", b"{oops")
    headers = dict(record.headers)
    assert headers["trace"] == b"abc"
    assert headers["auditstream.source.partition"] == b"2"
    assert dead_letter.read(record.headers)["offset"] == "41"
    assert DLQ_TRUNCATED not in headers


def test_a_near_limit_message_is_dead_lettered_truncated_with_size_and_hash() -> None:
    value = b"x" * 1_048_000  # what the broker accepts on the raw topic
    record = ROUTER.dead_letter("oversized", "too big", SOURCE, b"acme:u1", value, [])
    size = len(record.key or b"") + len(record.value) + headers_size(record.headers)
    assert size <= MESSAGE_MAX_BYTES - RECORD_OVERHEAD
    assert size > MESSAGE_MAX_BYTES - RECORD_OVERHEAD - 100  # cut to fit, not further
    headers = dict(record.headers)
    assert headers[DLQ_ORIGINAL_SIZE] == b"1048000"
    assert headers[DLQ_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert headers[DLQ_TRUNCATED] == b"value"
    assert dead_letter.read(record.headers)["reason"] == "oversized"
    assert value.startswith(record.value)


def test_huge_headers_and_key_are_cut_too() -> None:
    raw_headers: list[tuple[str, str | bytes | None]] = [("h", b"y" * 600_000)]
    key = b"k" * 600_000
    record = ROUTER.dead_letter("oversized", "", SOURCE, key, b"v" * 10, raw_headers)
    size = len(record.key or b"") + len(record.value) + headers_size(record.headers)
    assert size <= MESSAGE_MAX_BYTES - RECORD_OVERHEAD
    headers = dict(record.headers)
    assert headers[DLQ_TRUNCATED] == b"value,headers,key"
    assert "h" not in headers


def test_the_whole_loop_dead_letters_a_near_limit_message() -> None:
    r = rig()
    r.cluster.append(0, b'{"blob": "' + b"x" * 1_047_990 + b'"}')
    r.run(1)
    (record,) = r.cluster.records
    assert record.topic == "dlq"
    assert dead_letter.read(record.headers)["reason"] == "oversized"
    assert dict(record.headers)[DLQ_ORIGINAL_SIZE] == b"1048002"


# -- the staged dedup window and the rate-limited log -----------------------------------
def test_staged_ids_commit_keeps_and_rollback_forgets() -> None:
    clock = Clock()
    recent = StagedRecentIds(60.0, 100, clock=clock)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert not recent.seen_before("acme", a)
    recent.commit()
    assert not recent.seen_before("acme", b)
    assert recent.seen_before("acme", a)  # committed: a repeat, not staged again
    assert recent.staged == 1
    recent.rollback()
    assert len(recent) == 1
    assert recent.seen_before("acme", a)
    assert not recent.seen_before("acme", b)  # forgotten by the rollback: new again


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_rate_limited_log_says_each_condition_once_per_interval() -> None:
    clock = Clock()
    logger = logging.getLogger("test.ratelimit")
    handler = Records()
    logger.addHandler(handler)
    try:
        limited = RateLimitedLog(logger, every=30.0, clock=clock)
        for _ in range(1000):
            limited.warning("down", "broker down")
            clock.t += 0.01  # 10 s of failures
        limited.warning("other", "another condition")
        clock.t += 25.0
        limited.warning("down", "broker down")
    finally:
        logger.removeHandler(handler)
    assert handler.lines == [
        "broker down",
        "another condition",
        "broker down (999 more like this in the last 30 s)",
    ]
