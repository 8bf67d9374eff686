"""Dead letters: read them from the dead-letter topic, and replay them to the raw topic.

A dead letter's value, key and headers are the original message's (``stream_jobs.dead_letter``),
so once the cause is fixed (a setting, a schema, the store) it can be sent again as it was.

**No duplicates.** ``replay`` writes, in one Kafka transaction, the replayed messages to the
raw topic and one record per dead letter to the **replay ledger** (``Topics.replays``, a
compacted topic keyed by the dead letter's position), and skips every dead letter the
ledger already names. Its transactional id (``<app id>-dlq-replay``) fences a concurrent
replay, and the ledger is read only after ``init_transactions``, so two replays can't both
send one dead letter. Beyond that, identity does the rest: an event already stored
(same tenant and event id) is recorded as a repeat by the normalizer or the sink, not stored.

**Accounting** (docs/decisions/0001): the dead letter's own raw offset stays accounted for as
dead-lettered; the replayed message is a new raw offset, accounted for like any other
(stored, dead-lettered again, or a repeat). It carries ``auditstream.replay.of`` =
``<dead-letter topic>/<partition>/<offset>`` and ``auditstream.replay.reason``, and the
ledger record says which raw offset the replay got: what was replayed, from where, to where.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from auditstream.config import Settings
from auditstream.stream_jobs import dead_letter
from auditstream.stream_jobs.outputs import SOURCE_PREFIX

REPLAY_PREFIX = "auditstream.replay."
REPLAY_OF = REPLAY_PREFIX + "of"
"""On a replayed message: ``<dead-letter topic>/<partition>/<offset>`` it was replayed from."""
REPLAY_REASON = REPLAY_PREFIX + "reason"
REPLAY_AT = REPLAY_PREFIX + "at"
CHUNK = 500
"""Dead letters per replay transaction."""
METADATA_SECONDS = 10.0
"""How long to wait for the cluster to describe a topic (Kafka down: one sentence then)."""


class DlqError(RuntimeError):
    """Kafka refused or did not answer; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        """``partition:offset`` on the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def context(self) -> dict[str, str]:
        return dead_letter.read(list(self.headers))

    @property
    def reason(self) -> str:
        return self.context.get("reason", "?")

    @property
    def source(self) -> str:
        """The raw position it came from (``auditstream.source.*``, else where it failed)."""
        h = {k: v.decode(errors="replace") for k, v in self.headers}
        if SOURCE_PREFIX + "topic" in h:
            return "/".join(h.get(SOURCE_PREFIX + x, "?") for x in ("topic", "partition", "offset"))
        c = self.context
        return "/".join(c.get(x, "?") for x in ("topic", "partition", "offset"))

    @property
    def truncated(self) -> bool:
        """Cut to fit the dead-letter topic: the original bytes are not all here."""
        return "truncated" in self.context

    @property
    def replay_of(self) -> str | None:
        """The dead letter this one is a replay of (a replay that failed again), if any."""
        for k, v in self.headers:
            if k == REPLAY_OF:
                return v.decode(errors="replace")
        return None

    @property
    def failed_at(self) -> str:
        return self.context.get("failed_at") or datetime.fromtimestamp(
            self.timestamp_ms / 1000, UTC
        ).isoformat(timespec="milliseconds")

    def replay_headers(self, now: datetime) -> list[tuple[str, str | bytes | None]]:
        """The original headers (without the pipeline's) and where the replay comes from."""
        ours = (dead_letter.PREFIX, SOURCE_PREFIX, REPLAY_PREFIX)
        kept: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in self.headers if not k.startswith(ours)
        ]
        return [
            *kept,
            (REPLAY_OF, self.position.encode()),
            (REPLAY_REASON, self.reason.encode()),
            (REPLAY_AT, now.isoformat(timespec="milliseconds").encode()),
        ]


@dataclass(frozen=True)
class Selection:
    reason: str | None = None
    since_ms: int | None = None
    ids: tuple[str, ...] = ()

    def wants(self, letter: DeadLetter) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.since_ms is not None and letter.timestamp_ms < self.since_ms:
            return False
        return not self.ids or letter.id in self.ids


_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")


def parse_since(text: str, now: datetime | None = None) -> int:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time (UTC when it has no offset): millis."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(text.strip().lower())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return int((now - timedelta(**{unit: int(m.group(1))})).timestamp() * 1000)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a time ago (30m, 2h, 7d) nor ISO 8601") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"auditstream-dlq-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )


def _read(settings: Settings, topic: str, since_ms: int | None, timeout: float) -> Iterable[Any]:
    """Every committed message of ``topic`` up to its end now (from ``since_ms`` if given)."""
    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=min(timeout, METADATA_SECONDS)).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        starts: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for p in sorted(meta.partitions):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if hi > lo:
                ends[p] = hi
                starts.append(TopicPartition(topic, p, lo))
        if since_ms is not None and starts:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, tp.partition, since_ms) for tp in starts], timeout=timeout
            )
            starts = [tp for tp in found if tp.offset >= 0]
            ends = {tp.partition: ends[tp.partition] for tp in starts}
        if not starts:
            return
        consumer.assign(starts)
        open_parts = set(ends)
        deadline = time.monotonic() + timeout
        while open_parts:
            batch = consumer.consume(1000, timeout=0.5)
            if not batch and time.monotonic() > deadline:
                raise DlqError(f"reading {topic} timed out after {timeout:.0f} s")
            for msg in batch:
                err, p = msg.error(), msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_parts.discard(p)
                        continue
                    raise DlqError(f"reading {topic}: {err.str()}")
                deadline = time.monotonic() + timeout
                offset = msg.offset() or 0
                if p not in open_parts or offset >= ends[p]:
                    open_parts.discard(p)
                    continue
                yield msg
                if offset >= ends[p] - 1:
                    open_parts.discard(p)
    except KafkaException as exc:
        raise DlqError(f"cannot read {topic} from Kafka: {exc.args[0].str()}") from None
    finally:
        consumer.close()


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    out = []
    for k, v in list(raw.items() if isinstance(raw, dict) else raw or ()):
        out.append((k, b"" if v is None else v.encode() if isinstance(v, str) else v))
    return tuple(out)


def read_dead_letters(
    settings: Settings,
    selection: Selection = Selection(),
    timeout: float = 30.0,
) -> list[DeadLetter]:
    topic = settings.topics.dead_letter
    out = []
    for msg in _read(settings, topic, selection.since_ms, timeout):
        ts = msg.timestamp()[1]
        letter = DeadLetter(
            topic,
            msg.partition(),
            msg.offset(),
            ts,
            msg.key(),
            msg.value(),
            _headers(msg.headers()),
        )
        if selection.wants(letter):
            out.append(letter)
    return sorted(out, key=lambda d: (d.timestamp_ms, d.partition, d.offset))


def find(settings: Settings, ident: str, timeout: float = 30.0) -> DeadLetter | None:
    """The dead letter at ``partition:offset`` of the dead-letter topic."""
    try:
        p, o = (int(x) for x in ident.split(":", 1))
    except ValueError:
        raise DlqError(f"{ident!r} is not a dead-letter id (partition:offset, as listed)") from None
    consumer = _consumer(settings)
    topic = settings.topics.dead_letter
    try:
        lo, hi = consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=min(timeout, METADATA_SECONDS)
        )
        if not lo <= o < hi:
            return None
        consumer.assign([TopicPartition(topic, p, o)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return None
                raise DlqError(f"reading {topic}: {err.str()}")
            if msg.offset() != o:
                return None
            return DeadLetter(
                topic, p, o, msg.timestamp()[1], msg.key(), msg.value(), _headers(msg.headers())
            )
    except KafkaException as exc:
        raise DlqError(f"cannot read {topic} from Kafka: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    raise DlqError(f"reading {topic} timed out after {timeout:.0f} s")


# -- the replay ledger -----------------------------------------------------------------------
def ensure_ledger(settings: Settings) -> None:
    topic = settings.topics.replays
    admin = AdminClient({**settings.kafka.client_config(), "log_level": 0})
    try:
        if topic in admin.list_topics(timeout=METADATA_SECONDS).topics:
            return
        rf = settings.topics.replication_factor or -1
        new = NewTopic(topic, 1, rf, config={"cleanup.policy": "compact"})
        for future in admin.create_topics([new], operation_timeout=15).values():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    except KafkaException as exc:
        raise DlqError(f"cannot create {topic}: {exc.args[0].str()}") from None


def read_ledger(settings: Settings, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """Dead-letter position (``topic/partition/offset``) -> its replay record."""
    out: dict[str, dict[str, Any]] = {}
    for msg in _read(settings, settings.topics.replays, None, timeout):
        key = (msg.key() or b"").decode(errors="replace")
        if msg.value() is None:
            out.pop(key, None)
        else:
            out[key] = json.loads(msg.value())
    return out


@dataclass(frozen=True)
class ReplayReport:
    replayed: tuple[tuple[DeadLetter, int, int], ...]
    """(dead letter, raw partition, raw offset) of each message sent."""
    already: tuple[DeadLetter, ...]
    """Selected, but replayed before (the ledger names them): not sent again."""
    truncated: tuple[DeadLetter, ...]
    """Selected, but cut to fit the dead-letter topic: the original bytes are not there."""


def plan(
    letters: Sequence[DeadLetter], ledger: dict[str, Any]
) -> tuple[list[DeadLetter], list[DeadLetter], list[DeadLetter]]:
    """(to send, already replayed, truncated): the pure part of ``replay``."""
    send, already, cut = [], [], []
    for letter in letters:
        if letter.position in ledger:
            already.append(letter)
        elif letter.truncated:
            cut.append(letter)
        else:
            send.append(letter)
    return send, already, cut


def replay(
    settings: Settings,
    selection: Selection,
    dry_run: bool = False,
    timeout: float = 30.0,
    progress: Callable[[int], None] = lambda n: None,
) -> ReplayReport:
    producer: Producer | None = None
    if not dry_run:
        ensure_ledger(settings)
        producer = Producer(
            {
                **settings.kafka.client_config(),
                "transactional.id": f"{settings.app_id}-dlq-replay",
                "enable.idempotence": True,
                "log_level": 0,
            }
        )
        try:
            # Fences a replay still running and settles its transaction: the ledger read
            # next includes everything a previous replay committed.
            producer.init_transactions(timeout)
        except KafkaException as exc:
            raise DlqError(f"cannot start a replay transaction: {exc.args[0].str()}") from None
    ledger = read_ledger(settings, timeout)
    send, already, cut = plan(read_dead_letters(settings, selection, timeout), ledger)
    done: list[tuple[DeadLetter, int, int]] = []
    if dry_run or producer is None:
        return ReplayReport(tuple((d, -1, -1) for d in send), tuple(already), tuple(cut))
    for start in range(0, len(send), CHUNK):
        done.extend(_transaction(settings, producer, send[start : start + CHUNK], timeout))
        progress(len(done))
    producer.flush(timeout)
    return ReplayReport(tuple(done), tuple(already), tuple(cut))


def _transaction(
    settings: Settings, producer: Producer, letters: Sequence[DeadLetter], timeout: float
) -> list[tuple[DeadLetter, int, int]]:
    raw, ledger = settings.topics.raw, settings.topics.replays
    now = datetime.now(UTC)
    landed: dict[int, tuple[int, int]] = {}
    failed: list[str] = []

    def delivered(index: int) -> Callable[[Any, Any], None]:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                failed.append(err.str())
            else:
                landed[index] = (msg.partition(), msg.offset())

        return report

    try:
        producer.begin_transaction()
        for i, letter in enumerate(letters):
            producer.produce(
                raw,
                value=letter.value,
                key=letter.key,
                headers=letter.replay_headers(now),
                on_delivery=delivered(i),
            )
            producer.poll(0)
        producer.flush(timeout)
        if failed or len(landed) != len(letters):
            raise DlqError(
                f"Kafka did not take every replayed message ({failed[0] if failed else 'timeout'})"
            )
        out = []
        for i, letter in enumerate(letters):
            partition, offset = landed[i]
            record = {
                "dead_letter": letter.position,
                "reason": letter.reason,
                "source": letter.source,
                "replayed_to": f"{raw}/{partition}/{offset}",
                "replayed_at": now.isoformat(timespec="milliseconds"),
            }
            producer.produce(
                ledger, key=letter.position.encode(), value=json.dumps(record).encode()
            )
            out.append((letter, partition, offset))
        producer.commit_transaction(timeout)
        return out
    except (KafkaException, DlqError) as exc:
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(timeout)
        why = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        raise DlqError(f"replay aborted, nothing of this batch was replayed: {why}") from None
