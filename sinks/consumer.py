"""The sink loop: consume -> batch -> write -> commit, one loop per table.

The order is the guarantee. Offsets are committed only after the write covering them
returned (rows stored, dead letters acknowledged by Kafka); a write that fails is retried
with backoff and never dropped. A crash between write and commit means the batch is read
again, and the writer makes that harmless (identity check + deduplication tokens).

Nothing here waits on ClickHouse in the consumer's thread: writes run on the loop's own
writer thread (with the loop's own ClickHouse client), and the consumer thread keeps
polling meanwhile, reading the next batch and then, when that one is full too, pausing its
partitions and polling on (so a long write or an outage of the store never costs the group
membership, ``max.poll.interval.ms``). A failed commit (the broker restarting,
``_WAIT_COORD``) is retried too: the write it covers already landed, so retrying is
harmless. On a rebalance the unwritten or uncommitted batches are dropped: the new owner
reads them again, and the writer skips what is already stored.

No row wedges the loop. A write refused because of its rows (a known bad-data error at
once; an unclassified refusal once it repeated ``isolate_after`` times for the same batch)
is bisected by the writer: the other rows are stored and each refused row's original
message is dead-lettered (``store_refused``, the store's error in the detail), its letter
tracked like any other of the batch so the offsets wait for Kafka's acknowledgement. The
dead-letter loop has nowhere to dead-letter to: it stores a minimal row instead
(``minimal_dead_letter``: payload and key emptied, reason kept, the refusal in the detail).
An outage (connection, timeout, too many parts...) is retried as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from auditstream.infra.ratelog import RateLimitedLog
from auditstream.sinks.batch import Batch, DeadLetter, SourceMessage
from auditstream.sinks.horizon import Horizon
from auditstream.sinks.rows import Record, UnstorableEvent, event_row, header_map
from auditstream.sinks.tables import DEAD_LETTERS, NO_RAW_OFFSET, NO_RAW_PARTITION
from auditstream.sinks.writer import BatchWriter, RefusedRow, WriteFailed, WriteResult
from auditstream.stream_jobs import dead_letter

log = logging.getLogger(__name__)

RowBuilder = Callable[[Record], tuple[Any, ...]]


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
    poll_seconds: float = 0.2
    """Longest the consumer thread waits in one poll while a write is under way."""
    dead_letter_seconds: float = 10.0
    """How long a write waits for Kafka to acknowledge the batch's dead letters."""
    log_every_seconds: float = 30.0
    """One log line per condition (a failing write, commit, broker) per this interval."""
    isolate_after: int = 3
    """Failed attempts of one batch with an unclassified refusal (neither a known bad-data
    error nor an outage) after which the writer bisects it to find refused rows."""


@dataclass
class SinkStats:
    consumed: int = 0
    inserted: int = 0
    already_stored: int = 0
    repeats: int = 0
    """Rows skipped as already stored from another raw position, recorded as repeats."""
    dead_lettered: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    store_refused: int = 0
    """Rows the store refused on their own: dead-lettered (or, on the dead-letter loop,
    stored as a minimal row)."""
    missing_source: int = 0
    """Rows stored without the ``auditstream.source.*`` headers (raw position unknown)."""
    batches: int = 0
    writes: int = 0
    write_seconds: float = 0.0
    """Successful writes and their time, summed (``ops.metrics``)."""
    failed_writes: int = 0
    failed_commits: int = 0
    dropped_on_revoke: int = 0
    last_write: WriteResult | None = None


Phase = Literal["writing", "write_retry", "committing"]


class SinkLoop:
    def __init__(
        self,
        consumer: Consumer,
        writer: BatchWriter,
        dead_letters: Producer | None,
        config: SinkConfig,
        clock: Callable[[], float] = time.monotonic,
        row: RowBuilder = event_row,
        horizon: Horizon | None = None,
        executor: Executor | None = None,
    ) -> None:
        """``dead_letters``: None for a loop that must never dead-letter (the one reading
        the dead-letter topic); ``horizon``: the table's retention window (None: keep all);
        ``executor``: runs the writes (default: one thread of the loop's own)."""
        self._row = row
        self._consumer = consumer
        self._writer = writer
        self._dlq = dead_letters
        self._config = config
        self._clock = clock
        self._horizon = horizon
        self._time_index = writer.spec.index_of(writer.spec.time_column)
        self._raw_index = (
            None if writer.spec.raw_position is None else writer.spec.index_of("raw_partition")
        )
        self._executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"sink-writer-{writer.spec.name}"
        )
        self._owns_executor = executor is None
        self._batch = self._new_batch()
        self._inflight: Batch | None = None
        self._future: Future[WriteResult] | None = None
        self._phase: Phase = "writing"
        self._attempt = 0
        self._isolate = False
        self._retry_at: float | None = None
        self._paused = False
        self._resume_needed = False
        self._rate = RateLimitedLog(log, config.log_every_seconds, clock)
        self.stats = SinkStats()
        self.stopping = threading.Event()

    @property
    def writer(self) -> BatchWriter:
        return self._writer

    def _new_batch(self) -> Batch:
        return Batch(self._config.max_rows, self._config.max_seconds, self._clock)

    # -- lifecycle -------------------------------------------------------------------------
    def subscribe(self) -> None:
        self._consumer.subscribe(
            [self._config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def start(self) -> None:
        """Before consuming: read the table's retention (on the writer's thread), waiting
        for the store if it went away."""
        attempt = 0
        while self._horizon is not None and not self.stopping.is_set():
            try:
                self._executor.submit(self._horizon.refresh).result()
                return
            except Exception as exc:
                attempt += 1
                delay = self._config.retry.delay(attempt)
                self._rate.warning(
                    "retention",
                    "cannot read the retention of %s: %s; retrying every %.0f s at most",
                    self._writer.spec.name, exc, self._config.retry.max_seconds,
                )  # fmt: skip
                self.stopping.wait(delay)

    def run(self) -> None:
        """Subscribe, step until ``stopping`` is set, write what is buffered, close."""
        try:
            self.start()
            self.subscribe()
            while not self.stopping.is_set():
                self.step()
            self._drain()
        finally:
            try:
                self._consumer.close()
            finally:
                if self._owns_executor:
                    self._executor.shutdown(wait=True)

    def step(self) -> None:
        """One turn: move the batch in flight on (written? commit it; failed? retry when
        due), hand a ready batch to the writer, and read, or just poll while paused."""
        if self._inflight is not None:
            self._advance()
        if self._inflight is None and self._batch.ready():
            self._submit(self._batch)
            self._batch = self._new_batch()
        if self._inflight is not None and self._batch.full:
            self._set_paused(True)
            self._take_all([m for m in [self._consumer.poll(self._wait())] if m is not None])
            return
        self._set_paused(False)
        room = max(1, min(1000, self._config.max_rows - len(self._batch)))
        self._take_all(self._consumer.consume(num_messages=room, timeout=min(0.1, self._wait())))

    def _wait(self) -> float:
        """How long a poll may block: until a retry is due, at most ``poll_seconds``."""
        if self._retry_at is None:
            return self._config.poll_seconds
        return max(0.0, min(self._config.poll_seconds, self._retry_at - self._clock()))

    def _drain(self) -> None:
        """On shutdown: finish the batch in flight, then the buffered one, with a few tries
        each; what is not committed then is read again on the next start."""
        failures = 0
        while failures < self._config.shutdown_write_attempts:
            if self._inflight is None:
                if self._batch.empty:
                    return
                self._submit(self._batch)
                self._batch = self._new_batch()
            if self._future is not None:
                _wait_done(self._future)
            before = self._attempt
            self._advance(force=True)
            if self._attempt > before:  # the write or the commit failed
                failures += 1
                time.sleep(min(1.0, self._config.retry.delay(failures)))
        unwritten = len(self._batch) + (len(self._inflight) if self._inflight else 0)
        log.warning(
            "shutting down with %d rows unwritten or uncommitted; they are read again "
            "on the next start",
            unwritten,
        )

    # -- reading ---------------------------------------------------------------------------
    def _take_all(self, messages: list[Message]) -> None:
        for message in messages:
            self._take(message)

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                self._rate.warning(f"consumer:{error.code()}", "consumer error: %s", error)
            return
        topic, partition, offset = _coordinates(message)
        self.stats.consumed += 1
        headers = _header_list(message)
        record = Record(
            topic, partition, offset, message.value() or b"", message.key(), header_map(headers)
        )
        try:
            row = self._row(record)
        except UnstorableEvent as exc:
            self._dead_letter(message, "unstorable", str(exc))
            return
        if self._horizon is not None:
            verdict = self._horizon.verdict(row[self._time_index])
            if verdict is not None:
                days = self._horizon.days
                self._dead_letter(
                    message,
                    verdict,
                    f"{self._writer.spec.time_column} {row[self._time_index].isoformat()} "
                    f"is outside what {self._writer.spec.name} keeps (retention {days} days)",
                )
                return
        if self._raw_index is not None and row[self._raw_index] == NO_RAW_PARTITION:
            self.stats.missing_source += 1
            self._rate.warning(
                "missing_source",
                "%s: event without auditstream.source.* headers (stored; raw position unknown)",
                self._writer.spec.name,
            )
        source = SourceMessage(topic, partition, offset, message.key(), message.value(), headers)
        self._batch.add(row, topic, partition, offset, source)

    def _dead_letter(self, message: Message, reason: str, detail: str) -> None:
        topic, partition, offset = _coordinates(message)
        if self._dlq is None:  # the dead-letter loop itself: refuse nothing, skip nothing
            raise RuntimeError(f"{topic}[{partition}]@{offset} cannot be stored: {detail}")
        letter = DeadLetter(
            key=message.key(),
            value=message.value(),
            headers=dead_letter.headers(
                reason, detail, dead_letter.Source(topic, partition, offset), _header_list(message)
            ),
        )
        self._batch.dead_letter(letter, topic, partition, offset)
        self._send(letter)
        self._dlq.poll(0)
        self.stats.dead_lettered += 1
        self.stats.dead_letter_reasons[reason] = self.stats.dead_letter_reasons.get(reason, 0) + 1

    def _send(self, letter: DeadLetter) -> None:
        assert self._dlq is not None

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                letter.acked = True
            else:
                letter.failed = str(err)

        letter.failed = None
        letter.sent = True
        try:
            self._dlq.produce(
                self._config.dead_letter_topic,
                key=letter.key,
                value=letter.value,
                headers=letter.headers,
                on_delivery=delivered,
            )
        except (BufferError, KafkaException) as exc:
            letter.sent = False
            letter.failed = f"{type(exc).__name__}: {exc}"

    # -- writing (on the writer thread) ----------------------------------------------------
    def _write_job(self, batch: Batch, isolate: bool) -> WriteResult:
        if self._horizon is not None:
            try:
                self._horizon.refresh_if_due()
            except Exception as exc:  # keep the retention read last; the write says more
                self._rate.warning("retention", "cannot read the retention: %s", exc)
        result = self._write(batch, isolate) if batch.rows else WriteResult(0, 0, 0.0)
        if result.refused and self._dlq is None:
            result = self._store_minimal(batch, result)
        self._dead_letter_refused(batch, result)
        self._confirm_dead_letters(batch)
        return result

    def _write(self, batch: Batch, isolate: bool) -> WriteResult:
        return self._writer.write(batch, isolate=True) if isolate else self._writer.write(batch)

    def _store_minimal(self, batch: Batch, result: WriteResult) -> WriteResult:
        """The dead-letter loop: a refused row cannot be dead-lettered (to itself, in a
        loop); store a minimal row in its place, or retry if even that is refused."""
        if self._writer.spec != DEAD_LETTERS:
            first = result.refused[0].error
            raise WriteFailed(
                f"{len(result.refused)} rows refused, nowhere to put them: {first}", "rows"
            )
        stand_ins = Batch(len(result.refused), 0.0, self._clock, salt="minimal")
        stand_ins.ranges = dict(batch.ranges)
        stand_ins.rows = [minimal_dead_letter(batch.rows[r.index], r.error) for r in result.refused]
        stored = self._writer.write(stand_ins)
        if stored.refused:
            raise WriteFailed(
                f"minimal dead-letter row refused too: {stored.refused[0].error}", "rows"
            )
        return replace(
            result,
            inserted=result.inserted + stored.inserted,
            inserts=result.inserts + stored.inserts,
            refused=tuple(RefusedRow(r.index, r.error, substituted=True) for r in result.refused),
        )

    def _dead_letter_refused(self, batch: Batch, result: WriteResult) -> None:
        """Each row the store refused: its original message to the dead-letter topic (once;
        a retried write finds the same rows refused and sends nothing new)."""
        for refused in result.refused:
            if refused.substituted or refused.index in batch.refused:
                continue
            source = batch.sources[refused.index]
            if self._dlq is None or source is None:
                raise WriteFailed(f"a row refused and nowhere to put it: {refused.error}", "rows")
            letter = DeadLetter(
                key=source.key,
                value=source.value,
                headers=dead_letter.headers(
                    "store_refused",
                    f"ClickHouse refused the row for {self._writer.spec.name}: {refused.error}",
                    dead_letter.Source(source.topic, source.partition, source.offset),
                    source.headers,
                ),
            )
            batch.refuse(refused.index, letter)
            self._send(letter)

    def _confirm_dead_letters(self, batch: Batch) -> None:
        """Every dead letter of the batch acknowledged, or ``WriteFailed`` (re-sending any
        whose delivery failed: a duplicate dead letter folds into one stored row)."""
        if not batch.dead_letters:
            return
        assert self._dlq is not None
        for letter in batch.dead_letters:
            if not letter.acked and (letter.failed is not None or not letter.sent):
                self._send(letter)
        deadline = time.monotonic() + self._config.dead_letter_seconds
        while True:
            waiting = [x for x in batch.dead_letters if not x.acked and x.failed is None]
            if not waiting or time.monotonic() >= deadline:
                break
            self._dlq.poll(0.1)
        missing = [x for x in batch.dead_letters if not x.acked]
        if missing:
            why = next((x.failed for x in missing if x.failed), "no acknowledgement yet")
            raise WriteFailed(
                f"{len(missing)} dead letters not acknowledged by Kafka: {why}", "outage"
            )

    # -- batch in flight (consumer thread) -------------------------------------------------
    def _submit(self, batch: Batch) -> None:
        self._inflight = batch
        self._phase = "writing"
        self._future = self._executor.submit(self._write_job, batch, self._isolate)

    def _advance(self, force: bool = False) -> None:
        future = self._future
        if future is not None:
            if not future.done():
                return
            self._future = None
            try:
                result = future.result()
            except WriteFailed as exc:
                self._write_failed(exc)
                return
            self.stats.last_write = result
            self.stats.writes += 1
            self.stats.write_seconds += result.seconds
            self.stats.inserted += result.inserted
            self.stats.already_stored += result.already_stored
            self.stats.repeats += result.repeats
            self._count_refused(result)
            if self._phase == "write_retry" or self._attempt:
                self._rate.resolved("write", "write succeeded after %d retries", self._attempt)
            self._phase, self._attempt, self._retry_at = "committing", 0, None
        if self._retry_at is not None and self._clock() < self._retry_at and not force:
            return
        assert self._inflight is not None
        if self._phase == "write_retry":
            self._submit(self._inflight)
        elif self._phase == "committing":
            self._commit(self._inflight)

    def _count_refused(self, result: WriteResult) -> None:
        if not result.refused:
            return
        assert self._inflight is not None
        letters = len(self._inflight.refused)
        self.stats.store_refused += len(result.refused)
        if letters:
            self.stats.dead_lettered += letters
            reasons = self.stats.dead_letter_reasons
            reasons["store_refused"] = reasons.get("store_refused", 0) + letters
        self._rate.warning(
            "store_refused",
            "%s refused %d of %d rows (%s); %s",
            self._writer.spec.name, len(result.refused), len(self._inflight),
            result.refused[0].error,
            "dead-lettered" if letters else "stored as minimal dead-letter rows",
        )  # fmt: skip

    def _write_failed(self, exc: Exception) -> None:
        assert self._inflight is not None
        self.stats.failed_writes += 1
        self._attempt += 1
        kind = exc.kind if isinstance(exc, WriteFailed) else "unknown"
        if kind == "unknown" and self._attempt >= self._config.isolate_after:
            self._isolate = True  # the same rows keep being refused: find out which
        delay = self._config.retry.delay(self._attempt)
        self._phase = "write_retry"
        self._retry_at = self._clock() + delay
        self._rate.warning(
            "write",
            "write of %d rows to %s failed (attempt %d): %s; retrying in %.1f s, "
            "reading on into the next batch only",
            len(self._inflight), self._writer.spec.name, self._attempt, exc, delay,
        )  # fmt: skip

    def _commit(self, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, o) for t, p, o in batch.commit_offsets()]
        try:
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self.stats.failed_commits += 1
            self._attempt += 1
            delay = self._config.retry.delay(self._attempt)
            self._retry_at = self._clock() + delay
            self._rate.warning(
                "commit",
                "commit of %s offsets failed (attempt %d): %s; the rows are stored, "
                "retrying the commit in %.1f s",
                self._writer.spec.name, self._attempt, exc, delay,
            )  # fmt: skip
            return
        if self._attempt:
            self._rate.resolved("commit", "commit succeeded after %d retries", self._attempt)
        self.stats.batches += 1
        self._inflight = None
        self._isolate = False
        self._phase, self._attempt, self._retry_at = "writing", 0, None

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused and not (not paused and self._resume_needed):
            return
        assignment = self._consumer.assignment()
        if paused:
            self._consumer.pause(assignment)
        elif assignment:
            self._consumer.resume(assignment)
        self._paused = paused
        self._resume_needed = False

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("%s: assigned %s", self._config.topic, [p.partition for p in partitions])
        if self._writer.chain is not None:  # another sink may have extended their chains
            self._writer.chain.forget_partitions(p.partition for p in partitions)
        self._resume_needed = True

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._inflight is not None and self._phase == "committing" and self._future is None:
            try:  # written: commit while the partitions are still ours
                self._commit(self._inflight)
            except Exception as exc:  # a lost partition: its new owner reads it again
                log.info("commit on revoke failed: %s", exc)
        dropped = len(self._batch) + (len(self._inflight) if self._inflight else 0)
        if dropped:
            log.info("partitions revoked: dropping %d unwritten or uncommitted rows", dropped)
            self.stats.dropped_on_revoke += dropped
        # A write still under way finishes on the writer thread; its result is not used.
        self._batch = self._new_batch()
        self._inflight = None
        self._future = None
        self._isolate = False
        self._phase, self._attempt, self._retry_at = "writing", 0, None
        self._paused = False
        self._resume_needed = True


def minimal_dead_letter(row: tuple[Any, ...], error: str) -> tuple[Any, ...]:
    """A dead-letter row the store refused, made storable: key and payload emptied, every
    number clamped to its column, the reason kept and the refusal put in the detail (the
    dead-letter loop cannot dead-letter to itself)."""
    spec = DEAD_LETTERS
    out = list(row)

    def put(name: str, value: Any) -> None:
        out[spec.index_of(name)] = value

    def number(name: str, top: int, default: int) -> None:
        value = row[spec.index_of(name)]
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top
        put(name, value if ok else default)

    def text(name: str, limit: int) -> None:
        value = row[spec.index_of(name)]
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        put(name, str(value or "")[:limit])

    for name in ("source_partition", "failed_partition", "kafka_partition"):
        number(name, NO_RAW_PARTITION, NO_RAW_PARTITION)
    for name in ("source_offset", "failed_offset", "kafka_offset"):
        number(name, NO_RAW_OFFSET, NO_RAW_OFFSET)
    for name in ("payload_size", "original_size"):
        number(name, NO_RAW_OFFSET, 0)
    for name in ("source_topic", "failed_topic", "reason"):
        text(name, 249)  # Kafka's longest topic name
    text("original_sha256", 64)
    sha = row[spec.index_of("payload_sha256")]
    if not (isinstance(sha, str) and len(sha) == 64 and sha.isascii()):
        put("payload_sha256", "0" * 64)
    failed_at = row[spec.index_of("failed_at")]
    if not (isinstance(failed_at, datetime) and 1900 < failed_at.year < 2299):
        put("failed_at", datetime.now(UTC))
    original = row[spec.index_of("detail")]
    put("detail", f"store refused the dead letter ({error[:2000]}); was: {str(original)[:2000]}")
    put("key", b"")
    put("payload", b"")
    put("payload_truncated", True)
    return tuple(out)


def _wait_done(future: Future[WriteResult]) -> None:
    """Block until the write is over (its outcome is read by ``_advance``)."""
    wait([future])


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
        "isolation.level": "read_committed",  # the normalizer writes in transactions
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
