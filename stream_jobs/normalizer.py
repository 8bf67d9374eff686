"""The normalizer: raw topic -> normalized / dead-letter / repeats, in Kafka transactions.

``auditstream normalizer`` runs one ``NormalizerLoop`` in its own process. Each turn is the
same four small steps (docs/decisions/0002-normalizer-loop.md):

1. **fill** a batch from the consumer, bounded by size and time (``Batch``);
2. **process** it: the pure ``Normalizer`` decides each message's outcome and the pure
   ``Router`` turns it into exactly one record (normalized event, dead letter, repeat),
   with the source headers; any unexpected error is caught per message and dead-lettered;
3. **transact**: begin, produce every record, ``send_offsets_to_transaction`` with the
   batch's next offsets, commit (``Transactor``);
4. **settle**: committed, the dedup window keeps the batch's ids; aborted, it forgets them
   and the consumer is rewound to where the batch started (= the committed offsets), so the
   same messages are processed again.

So each raw offset appears exactly once across the three output topics for a
``read_committed`` reader, whatever crashes, rebalances or broker restarts happen. Kafka
clients are made by injected factories: unit tests pass fakes, the process the real ones.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from auditstream.config import Settings
from auditstream.infra.ratelog import RateLimitedLog, RdkafkaLogFilter
from auditstream.stream_jobs.dead_letter import PREFIX as DLQ_PREFIX
from auditstream.stream_jobs.normalize import Duplicate, Invalid, Normalized, Normalizer
from auditstream.stream_jobs.outputs import (
    INTERNAL_ERROR,
    UNPRODUCIBLE,
    Record,
    Router,
    Source,
)
from auditstream.stream_jobs.staged_ids import StagedRecentIds

log = logging.getLogger(__name__)
DLQ_REASON = DLQ_PREFIX + "reason"

ABORTS_BEFORE_SPLIT = 5
"""A batch aborted this many times in a row for the same reason is split in half (and again,
down to one message, which is then dead-lettered as ``unproducible``): no message can wedge
the loop in an abort-and-redo cycle."""

PER_RECORD_ERRORS = frozenset(
    getattr(KafkaError, name)
    for name in (
        "MSG_SIZE_TOO_LARGE",
        "_MSG_SIZE_TOO_LARGE",
        "INVALID_MSG_SIZE",
        "INVALID_MSG",
        "CORRUPT_MESSAGE",
        "INVALID_RECORD",
        "RECORD_LIST_TOO_LARGE",
        "_INVALID_ARG",
        "_BAD_MSG",
    )
    if hasattr(KafkaError, name)
)
"""Produce errors that are about the record itself, not the producer or the broker: retrying
it can never succeed, so it is dead-lettered instead of aborting the batch."""

CONNECTIVITY_ERRORS = frozenset(
    getattr(KafkaError, name)
    for name in (
        "_TIMED_OUT",
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "REQUEST_TIMED_OUT",
        "NETWORK_EXCEPTION",
        "NOT_COORDINATOR",
        "COORDINATOR_NOT_AVAILABLE",
        "COORDINATOR_LOAD_IN_PROGRESS",
        "NOT_LEADER_FOR_PARTITION",
        "LEADER_NOT_AVAILABLE",
    )
    if hasattr(KafkaError, name)
)
"""Abort reasons that say the broker is away, not that a message is bad: they never count
toward splitting a batch (an outage must not get a valid event dead-lettered)."""

FENCED_ERRORS = frozenset(
    getattr(KafkaError, name)
    for name in ("_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "FENCED_INSTANCE_ID")
    if hasattr(KafkaError, name)
)
"""Another client with our transactional id (or static group instance id) took over."""

MESSAGE_MAX_BYTES = 1_000_000
"""The producer's ``message.max.bytes`` (librdkafka's default, set explicitly). A produce
request then never exceeds the broker's 1,048,588-byte default limit, and the ``Router``
truncates any dead letter that would not fit, so every message the broker accepted on the
raw topic can be dead-lettered, headers included."""


class NormalizerError(RuntimeError):
    """The normalizer cannot run (bad client settings, credentials refused); the message
    is one sentence saying why."""


class MessageLike(Protocol):
    def error(self) -> KafkaError | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


class ConsumerLike(Protocol):
    def subscribe(self, topics: list[str], **callbacks: Any) -> None: ...
    def consume(self, num_messages: int = 1, timeout: float = -1) -> Sequence[MessageLike]: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def committed(self, partitions: list[TopicPartition], timeout: float = ...) -> list[TopicPartition]: ...  # fmt: skip  # noqa: E501
    def consumer_group_metadata(self) -> Any: ...
    def close(self) -> None: ...


class ProducerLike(Protocol):
    def init_transactions(self, timeout: float = ...) -> None: ...
    def begin_transaction(self) -> None: ...
    def produce(self, topic: str, value: bytes | None = ..., key: bytes | None = ..., **kw: Any) -> None: ...  # fmt: skip  # noqa: E501
    def poll(self, timeout: float = ...) -> int: ...
    def send_offsets_to_transaction(self, positions: list[TopicPartition], group_metadata: Any, timeout: float = ...) -> None: ...  # fmt: skip  # noqa: E501
    def commit_transaction(self, timeout: float = ...) -> None: ...
    def abort_transaction(self, timeout: float = ...) -> None: ...
    def flush(self, timeout: float = ...) -> int: ...


ConsumerFactory = Callable[[dict[str, Any]], ConsumerLike]
ProducerFactory = Callable[[dict[str, Any]], ProducerLike]


def _error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _describe(exc: BaseException) -> str:
    err = _error(exc)
    return err.str() if err is not None else str(exc)


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs, derived once from ``Settings`` (``from_settings``)."""

    raw_topic: str
    group_id: str
    transactional_id: str
    client: dict[str, Any] = field(default_factory=dict)
    """librdkafka settings every client starts from (bootstrap servers, TLS / SASL)."""
    max_events: int = 2_000
    max_seconds: float = 0.1
    operation_timeout: float = 10.0
    """Seconds one transactional call may take before it is retried (or, for
    ``init_transactions``, before the broker is reported unreachable)."""
    poll_timeout: float = 0.5
    """How long an idle consume waits: the bound on noticing a stop request."""
    stop_grace: float = 10.0
    """After a stop request, how long a failing commit is still retried before aborting."""
    instance: str = "0"
    """``AUDITSTREAM_NORMALIZER_INSTANCE``: the part of the ids that tells instances apart."""
    fenced_again_within: float = 30.0
    """Fenced again this soon after the fresh producer (or consumer) that replaced a fenced
    one: another live process uses our instance id, and this one stops (``NormalizerError``)
    instead of the two fencing each other for ever."""
    stuck_after: float = 20.0
    """A transactional call that has not returned after this long (its own timeout is
    ``operation_timeout``) is stuck: the producer is replaced (``Result.STUCK``)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> LoopConfig:
        conf = settings.normalizer
        return cls(
            raw_topic=settings.topics.raw,
            group_id=f"{settings.app_id}-normalizer",
            transactional_id=f"{settings.app_id}-normalizer-{conf.instance}",
            instance=conf.instance,
            client=settings.kafka.client_config(),
            max_events=conf.transaction_max_events,
            max_seconds=conf.transaction_max_seconds,
        )

    def consumer_config(self) -> dict[str, Any]:
        return {
            **self.client,
            "group.id": self.group_id,
            # Static membership: a restarted instance (same id) takes its partitions back at
            # once instead of waiting out the dead member's session.
            "group.instance.id": self.transactional_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            "enable.partition.eof": False,
        }

    def producer_config(self) -> dict[str, Any]:
        return {
            **self.client,
            # One id per process instance: a restart with the same id fences its previous
            # incarnation and aborts the transaction it left open.
            "transactional.id": self.transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": MESSAGE_MAX_BYTES,
            "transaction.timeout.ms": 60_000,
        }


@dataclass
class Batch:
    """Messages consumed since the last commit, and where each partition's run began."""

    messages: list[MessageLike] = field(default_factory=list)
    starts: dict[tuple[str, int], int] = field(default_factory=dict)
    nexts: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, msg: MessageLike) -> None:
        tp = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        self.messages.append(msg)
        self.starts.setdefault(tp, offset)
        self.nexts[tp] = offset + 1

    def offsets(self) -> list[TopicPartition]:
        """What to commit: each partition's next offset."""
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self.nexts.items())]

    def rewind_to(self) -> list[TopicPartition]:
        """Where to seek back to if the batch's transaction aborts."""
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self.starts.items())]


@dataclass
class NormalizerStats:
    normalized: int = 0
    dead_lettered: int = 0
    repeats: int = 0
    committed_batches: int = 0
    aborted_batches: int = 0
    producers_recreated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    batch_count: int = 0
    batch_seconds: float = 0.0
    """Time from each filled batch to its settled transaction, summed (``ops.metrics``)."""
    turned_at: float | None = None
    """The loop's clock at its last turn (``/healthz``: a loop that stopped turning)."""


class Processor:
    """Step 2: raw messages -> records, one each (normalize, then route). Never raises."""

    def __init__(self, step: Callable[..., Any], router: Router) -> None:
        self._step = step
        self._router = router
        self.topics = router.topics

    def __call__(self, messages: Sequence[MessageLike]) -> list[Record]:
        return [self.one(msg) for msg in messages]

    def one(self, msg: MessageLike) -> Record:
        source = Source(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        key, value, headers = msg.key(), msg.value(), msg.headers() or []
        try:
            return self._router(self._step(value, headers), source, key, value, headers)
        except Exception as exc:  # a bug must not stop the loop or lose the message
            log.exception("normalizer failed on %s; dead-lettering it", source)
            return self._router.dead_letter(INTERNAL_ERROR, repr(exc), source, key, value, headers)

    def unproducible(self, msg: MessageLike, detail: str, bare: bool = False) -> Record:
        """The dead letter for a message whose record could not be produced; ``bare``: one
        without the raw key, value and headers (when even the full one was refused)."""
        source = Source(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        if bare:
            return self._router.bare_dead_letter(UNPRODUCIBLE, detail, source)
        key, value, headers = msg.key(), msg.value(), msg.headers() or []
        return self._router.dead_letter(UNPRODUCIBLE, detail, source, key, value, headers)


class Result(Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"
    FATAL = "fatal"
    """The producer is unusable (fenced, or a fatal idempotence error): make a new one."""
    STUCK = "stuck"
    """A transactional call did not return: abandon the producer (never touch it again)
    and make a new one, whose ``init_transactions`` fences it and aborts its transaction."""


class _Stuck(Exception):
    """A librdkafka call outlived its own timeout."""


def bounded(call: Callable[[], None], seconds: float) -> None:
    """Run ``call`` with a deadline of our own. librdkafka's ``send_offsets_to_transaction``
    can block past its timeout, forever, after the group coordinator went away
    (confluentinc/librdkafka#5456, #5511; seen here after a broker restart). The call runs
    in a daemon thread; if it has not returned in ``seconds``, ``_Stuck`` is raised and the
    thread is left behind with the producer it is stuck in."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=target, name="normalizer-txn-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise _Stuck(f"no answer within {seconds:.0f}s")
    if outcome[0] is not None:
        raise outcome[0]


Fallback = Callable[[int, str, bool], Record]
"""(index in the batch, why, bare) -> the dead letter to produce instead of that record."""


class Transactor:
    """Step 3: one batch's records and offsets in one transaction."""

    def __init__(self, config: LoopConfig, limited: RateLimitedLog) -> None:
        self._config = config
        self._limited = limited
        self.last_error = ""
        """Why the last ``run`` did not commit (for the abort guard)."""
        self.last_code: int | None = None
        self.replaced = 0
        """Records of the last ``run`` replaced by a dead letter (a per-record error)."""

    def run(
        self,
        producer: ProducerLike,
        records: list[Record],
        offsets: list[TopicPartition],
        group_metadata: Any,
        stop: Callable[[], bool],
        fallback: Fallback | None = None,
    ) -> Result:
        timeout = self._config.operation_timeout
        limit = self._config.stuck_after
        self.last_error = ""
        self.last_code = None
        self.replaced = 0
        try:
            producer.begin_transaction()
            for index, record in enumerate(records):
                records[index] = self._produce_or_dead_letter(producer, index, record, fallback)
            self._retry(
                "send offsets",
                lambda: bounded(
                    lambda: producer.send_offsets_to_transaction(offsets, group_metadata, timeout),
                    limit,
                ),
                stop,
            )
            self._retry(
                "commit", lambda: bounded(lambda: producer.commit_transaction(timeout), limit), stop
            )
            return Result.COMMITTED
        except _Stuck as exc:
            self.last_error = "stuck"
            self._limited.error(
                "stuck", f"a transactional call is stuck ({exc}); replacing the producer"
            )
            return Result.STUCK
        except KafkaException as exc:
            err = _error(exc)
            self.last_error = err.name() if err is not None else str(exc)
            self.last_code = err.code() if err is not None else None
            if err is not None and err.fatal():
                self._limited.error("fatal", f"producer failed fatally ({err.str()})")
                return Result.FATAL
            self._limited.warning("abort", f"aborting a transaction: {_describe(exc)}")
            return self._abort(producer, stop)

    def _produce_or_dead_letter(
        self, producer: ProducerLike, index: int, record: Record, fallback: Fallback | None
    ) -> Record:
        """Produce ``record``; if it is refused for itself (``PER_RECORD_ERRORS``), the raw
        message's dead letter instead, and failing that, a bare one. Returns what it sent."""
        for bare in (False, True):
            try:
                self._produce(producer, record)
                return record
            except KafkaException as exc:
                err = _error(exc)
                if fallback is None or err is None or err.code() not in PER_RECORD_ERRORS:
                    raise
                self._limited.warning(
                    f"refused:{err.name()}",
                    f"the producer refused a record ({err.str()}); dead-lettering its message",
                )
                self.replaced += 1
                record = fallback(index, f"{record.topic}: {err.str()}", bare)
        self._produce(producer, record)
        return record

    def _produce(self, producer: ProducerLike, record: Record) -> None:
        while True:
            try:
                producer.produce(
                    record.topic, value=record.value, key=record.key, headers=record.headers
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.05)

    def _retry(self, what: str, call: Callable[[], None], stop: Callable[[], bool]) -> None:
        """Repeat ``call`` while it fails with a retriable error (a broker away, a
        timeout); an abortable or fatal error is raised to ``run``. After a stop request
        it is retried for ``stop_grace`` seconds at most."""
        deadline: float | None = None
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                err = _error(exc)
                if err is None or not err.retriable() or err.fatal() or err.txn_requires_abort():
                    raise
                self._limited.warning(
                    f"retry:{what}", f"transaction {what} failed ({err.str()}); retrying"
                )
                if stop():
                    deadline = deadline or time.monotonic() + self._config.stop_grace
                    if time.monotonic() > deadline:
                        raise

    def _abort(self, producer: ProducerLike, stop: Callable[[], bool]) -> Result:
        try:
            self._retry(
                "abort", lambda: producer.abort_transaction(self._config.operation_timeout), stop
            )
        except KafkaException as exc:
            self._limited.error("abort-failed", f"abort failed ({_describe(exc)})")
            return Result.FATAL
        return Result.ABORTED


class NormalizerLoop:
    """fill -> process -> transact -> settle, until ``stop()``."""

    def __init__(
        self,
        config: LoopConfig,
        process: Processor,
        recent: StagedRecentIds,
        consumer_factory: ConsumerFactory,
        producer_factory: ProducerFactory,
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        limited: RateLimitedLog | None = None,
    ) -> None:
        self.config = config
        self.stats = NormalizerStats()
        self._process = process
        self._recent = recent
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._say = say
        self._clock = clock
        self._limited = limited or RateLimitedLog(log)
        self._transactor = Transactor(config, self._limited)
        self._consumer: ConsumerLike | None = None
        self._producer: ProducerLike | None = None
        self._abandoned: list[ProducerLike | None] = []
        self._batch = Batch()
        # the abort guard (``_guard``)
        self._streak: tuple[str, int] = ("", 0)
        self._limit: int | None = None
        self._suspect: dict[tuple[str, int], int] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._unproducible: dict[tuple[str, int, int], tuple[str, int]] = {}
        # when a fenced producer / consumer was last replaced (``_fenced``)
        self._producer_refenced_at: float | None = None
        self._consumer_refenced_at: float | None = None

    @property
    def connected(self) -> bool:
        """Both clients made (the broker answered ``init_transactions``)."""
        return self._producer is not None and self._consumer is not None

    @property
    def abandoned(self) -> int:
        """Producers left behind stuck in a call (``Result.STUCK``)."""
        return len(self._abandoned)

    # -- life cycle -------------------------------------------------------------------
    def run(self, stop: Callable[[], bool]) -> NormalizerStats:
        if not self.open(stop):
            return self.stats
        self._say(
            f"normalizer: Kafka at {self.config.client.get('bootstrap.servers')}, reading "
            f"{self.config.raw_topic} as group {self.config.group_id}, writing in "
            f"transactions as {self.config.transactional_id}"
        )
        try:
            while not stop():
                self.step(stop)
        finally:
            self.close()
        s = self.stats
        self._say(
            f"normalizer stopped: {s.normalized} normalized, {s.dead_lettered} dead-lettered, "
            f"{s.repeats} repeats in {s.committed_batches} transactions "
            f"({s.aborted_batches} aborted and redone)"
        )
        return s

    def open(self, stop: Callable[[], bool]) -> bool:
        """Make the clients; False if stopped before the broker answered."""
        if not self._new_producer(stop):
            return False
        self._new_consumer()
        return True

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer: %s", _describe(exc))
            self._consumer = None
        if self._producer is not None:
            try:
                self._producer.flush(5)
            except KafkaException as exc:  # a fenced producer: nothing of ours is pending
                log.warning("closing the producer: %s", _describe(exc))
            self._producer = None

    def _new_producer(self, stop: Callable[[], bool]) -> bool:
        try:
            producer = self._producer_factory(self.config.producer_config())
        except KafkaException as exc:
            raise NormalizerError(f"bad producer settings: {_describe(exc)}") from None
        while True:
            try:
                producer.init_transactions(self.config.operation_timeout)
                self._producer = producer
                return True
            except KafkaException as exc:
                err = _error(exc)
                if err is None or not err.retriable():
                    raise NormalizerError(
                        f"Kafka at {self.config.client.get('bootstrap.servers')} refused the "
                        f"transactional producer: {_describe(exc)}"
                    ) from None
                self._limited.warning(
                    "init",
                    f"Kafka at {self.config.client.get('bootstrap.servers')} did not answer "
                    f"({err.str()}); retrying",
                )
                if stop():
                    return False

    def _new_consumer(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer: %s", _describe(exc))
        try:
            consumer = self._consumer_factory(self.config.consumer_config())
        except KafkaException as exc:
            raise NormalizerError(f"bad consumer settings: {_describe(exc)}") from None
        consumer.subscribe(
            [self.config.raw_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        self._consumer = consumer
        self._batch = Batch()

    # -- rebalance ----------------------------------------------------------------------
    # Callbacks run inside ``consume`` (step 1), never during a transaction, so no
    # transaction is open here; what is in flight is the batch being filled.
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._drop_batch("assignment")

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._drop_batch("revocation")

    def _drop_batch(self, why: str) -> None:
        # The batch's messages were not processed yet: forgetting them is the rewind (the
        # new assignment starts from the committed offsets).
        if self._batch:
            log.info("%s: dropping %d uncommitted messages", why, len(self._batch))
        self._batch = Batch()
        self._recent.rollback()

    # -- one turn -------------------------------------------------------------------------
    def step(self, stop: Callable[[], bool]) -> None:
        self.stats.turned_at = self._clock()
        if self._producer is not None:
            self._producer.poll(0)  # serve the producer's log lines and error callbacks
        batch = self.fill(stop)
        if not batch:
            return
        began = self._clock()
        records = self._process(batch.messages)
        for index, msg in enumerate(batch.messages):
            marked = self._unproducible.get(_where(msg))
            if marked is not None:
                records[index] = self._process.unproducible(msg, marked[0], bare=marked[1] > 1)
        assert self._producer is not None
        assert self._consumer is not None

        def fallback(index: int, detail: str, bare: bool) -> Record:
            return self._process.unproducible(batch.messages[index], detail, bare)

        result = self._transactor.run(
            self._producer,
            records,
            batch.offsets(),
            self._consumer.consumer_group_metadata(),
            stop,
            fallback,
        )
        self.settle(result, batch, records, stop)
        self._guard(result, batch)
        self.stats.batch_count += 1
        self.stats.batch_seconds += self._clock() - began

    def _guard(self, result: Result, batch: Batch) -> None:
        """Count aborts in a row for the same reason; after ``ABORTS_BEFORE_SPLIT``, halve
        the batch (the redo reads only the first half), and once a single message keeps
        aborting, mark it to be dead-lettered (``unproducible``) on the next try."""
        if result is Result.COMMITTED:
            self._streak = ("", 0)
            for tp, end in batch.nexts.items():
                self._positions[tp] = end
            if self._limit is not None and all(
                self._positions.get(tp, 0) >= end for tp, end in self._suspect.items()
            ):
                self._limit, self._suspect = None, {}  # past the batch that kept failing
            for msg in batch.messages:
                self._unproducible.pop(_where(msg), None)
            return
        if result is not Result.ABORTED:
            return
        reason = self._transactor.last_error
        if self._transactor.last_code in CONNECTIVITY_ERRORS:
            return
        count = self._streak[1] + 1 if self._streak[0] == reason else 1
        self._streak = (reason, count)
        if count < ABORTS_BEFORE_SPLIT:
            return
        self._streak = ("", 0)
        if len(batch) == 1:
            where = _where(batch.messages[0])
            previous = self._unproducible.get(where, ("", 0))[1]
            detail = f"its batch aborted {count} times in a row ({reason})"
            self._unproducible[where] = (detail, previous + 1)
            self._limited.error(
                "unproducible", f"{where} cannot be committed ({reason}); dead-lettering it"
            )
            return
        if not self._suspect:
            self._suspect = dict(batch.nexts)
        self._limit = max(1, len(batch) // 2)
        self._limited.warning(
            "split",
            f"a batch of {len(batch)} aborted {count} times in a row ({reason}); "
            f"retrying {self._limit} at a time",
        )

    def fill(self, stop: Callable[[], bool]) -> Batch:
        """Step 1: consume until ``max_events`` or ``max_seconds`` after the first one."""
        assert self._consumer is not None
        self._batch = batch = Batch()
        started: float | None = None
        most = self.config.max_events if self._limit is None else self._limit
        while len(self._batch) < most and not stop():
            if started is None:
                timeout = self.config.poll_timeout
            else:
                timeout = started + self.config.max_seconds - self._clock()
                if timeout <= 0:
                    break
            messages = self._consumer.consume(most - len(batch), timeout)
            if self._batch is not batch:  # a rebalance dropped it inside consume
                batch = self._batch
                started = None
            for msg in messages:
                err = msg.error()
                if err is not None:
                    self._consumer_error(err)
                    continue
                batch.add(msg)
            if not batch:
                break  # idle: back to the caller, which checks for a stop request
            if started is None:
                started = self._clock()
        self._batch = Batch()
        return batch

    def settle(
        self,
        result: Result,
        batch: Batch,
        records: Sequence[Record],
        stop: Callable[[], bool],
    ) -> None:
        """Step 4: keep or forget the batch's ids; rewind after an abort."""
        if result is Result.COMMITTED:
            self._recent.commit()
            self._count(records)
            return
        if result in (Result.FATAL, Result.STUCK):
            fenced = result is Result.FATAL and self._transactor.last_code in FENCED_ERRORS
            if fenced:
                self._check_fenced(self._producer_refenced_at)
            self.stats.producers_recreated += 1
            if result is Result.STUCK:
                self._abandoned.append(self._producer)  # destroying it would block too
            self._producer = None
            if not self._new_producer(stop):
                self._recent.rollback()
                raise _Stopped
            if fenced:
                self._producer_refenced_at = self._clock()
            # The old transaction may have committed after all (EndTxn reached the
            # coordinator, the answer did not come back): the new producer's
            # init_transactions has finished it either way, so the group's committed
            # offsets (read_committed: stable) now say which.
            if self.resume_from_committed(batch):
                self._recent.commit()
                self._count(records)
                return
            self._recent.rollback()
            self.stats.aborted_batches += 1
            return
        self._recent.rollback()
        self.stats.aborted_batches += 1
        self.rewind(batch)

    def resume_from_committed(self, batch: Batch) -> bool:
        """After the producer was replaced: seek each of the batch's partitions to its
        committed offset; True if those are past the batch (its transaction committed).
        If they cannot be read, a new consumer resumes from them all the same, and the
        batch counts as not committed (at worst its ids are forgotten: storage dedups)."""
        assert self._consumer is not None
        wanted = batch.rewind_to()
        try:
            committed = self._consumer.committed(wanted, self.config.operation_timeout)
        except KafkaException as exc:
            self._limited.warning(
                "committed", f"reading committed offsets failed ({_describe(exc)}); reconnecting"
            )
            self._new_consumer()
            return False
        done = True
        seeks: list[TopicPartition] = []
        for tp in committed:
            start = batch.starts[(tp.topic, tp.partition)]
            end = batch.nexts[(tp.topic, tp.partition)]
            offset = tp.offset if tp.offset >= 0 else start
            done = done and offset >= end
            seeks.append(TopicPartition(tp.topic, tp.partition, offset))
        try:
            for tp in seeks:
                self._consumer.seek(tp)
        except KafkaException as exc:
            self._limited.warning("seek", f"seek failed ({_describe(exc)}); reconnecting")
            self._new_consumer()
        if done:
            log.info("the replaced producer's last transaction had committed; not redone")
        return done

    def rewind(self, batch: Batch) -> None:
        """Seek back to where the batch started; if a seek fails, start a new consumer,
        which resumes from the committed offsets (the same place)."""
        assert self._consumer is not None
        try:
            for tp in batch.rewind_to():
                self._consumer.seek(tp)
        except KafkaException as exc:
            self._limited.warning("seek", f"rewind failed ({_describe(exc)}); reconnecting")
            self._new_consumer()

    def _count(self, records: Sequence[Record]) -> None:
        s = self.stats
        s.committed_batches += 1
        topics = self._process.topics
        for record in records:
            if record.topic == topics.normalized:
                s.normalized += 1
            elif record.topic == topics.dead_letter:
                s.dead_lettered += 1
                reason = dict(record.headers).get(DLQ_REASON, b"?").decode()
                s.reasons[reason] = s.reasons.get(reason, 0) + 1
            else:
                s.repeats += 1

    def _check_fenced(self, replaced_at: float | None) -> None:
        """Fenced once, a client is replaced (a zombie of ours, a timed-out transaction);
        fenced again within ``fenced_again_within`` of that, the one fencing us is another
        running process with our instance id: stop, saying so."""
        if replaced_at is not None and self._clock() - replaced_at <= (
            self.config.fenced_again_within
        ):
            raise NormalizerError(
                f"normalizer instance id {self.config.instance} is in use by another running "
                "process; give each one its own AUDITSTREAM_NORMALIZER_INSTANCE"
            )

    def _consumer_error(self, err: KafkaError) -> None:
        # A fatal consumer error arrives as ``_FATAL``, the cause only in its text.
        fatal = err.fatal() or err.code() == KafkaError._FATAL
        if err.code() in FENCED_ERRORS or (fatal and "fenced" in err.str().lower()):
            self._check_fenced(self._consumer_refenced_at)
            self._limited.error("consumer-fenced", f"consumer fenced ({err.str()})")
            self._new_consumer()
            self._consumer_refenced_at = self._clock()
            return
        if fatal:
            self._limited.error("consumer-fatal", f"consumer failed fatally ({err.str()})")
            self._new_consumer()
            return
        self._limited.warning(f"consumer:{err.name()}", f"consumer: {err.str()}")


def _where(msg: MessageLike) -> tuple[str, int, int]:
    return (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)


class _Stopped(Exception):
    """Stopped while re-creating the producer."""


def build_processor(settings: Settings, recent: StagedRecentIds) -> Processor:
    """The pure steps, built in one place (the ``Normalizer`` call site)."""
    step = Normalizer.from_settings(settings, recent=recent)
    return Processor(step, Router(settings.topics, MESSAGE_MAX_BYTES))


def build_recent(settings: Settings) -> StagedRecentIds:
    conf = settings.normalizer
    return StagedRecentIds(conf.dedup_window_seconds, conf.dedup_max_ids)


def client_logging(limited: RateLimitedLog) -> dict[str, Any]:
    """librdkafka's own log lines and errors, one per condition per interval."""
    rdlog = logging.getLogger("auditstream.normalizer.librdkafka")
    if not any(isinstance(f, RdkafkaLogFilter) for f in rdlog.filters):
        rdlog.addFilter(RdkafkaLogFilter(limited))

    def on_error(err: KafkaError) -> None:
        limited.warning(f"client:{err.name()}", f"Kafka client: {err.str()}")

    return {"logger": rdlog, "error_cb": on_error}


def run(settings: Settings, say: Callable[[str], None] = print) -> NormalizerStats:
    """Run until SIGINT / SIGTERM: the open batch is committed (or aborted) first."""
    from confluent_kafka import Consumer, Producer

    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    limited = RateLimitedLog(log)
    config = LoopConfig.from_settings(settings)
    config = LoopConfig(
        **{**config.__dict__, "client": {**config.client, **client_logging(limited)}}
    )
    recent = build_recent(settings)
    loop = NormalizerLoop(
        config,
        build_processor(settings, recent),
        recent,
        consumer_factory=lambda conf: cast(ConsumerLike, Consumer(conf)),
        producer_factory=lambda conf: cast(ProducerLike, Producer(conf)),
        say=say,
        limited=limited,
    )
    from auditstream.ops.observe import observe_normalizer

    observed = observe_normalizer(settings, loop)
    try:
        stats = loop.run(stopping.is_set)
    except _Stopped:
        loop.close()
        stats = loop.stats
    finally:
        observed()
    if loop.abandoned:
        # A producer left stuck in a librdkafka call: destroying it at interpreter exit
        # would block as well. Everything of ours is committed or aborted by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return stats


__all__ = [
    "Batch",
    "Duplicate",
    "Invalid",
    "LoopConfig",
    "Normalized",
    "NormalizerError",
    "NormalizerLoop",
    "NormalizerStats",
    "Processor",
    "Result",
    "Transactor",
    "run",
]
