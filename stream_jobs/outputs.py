"""Where each normalizer outcome goes: one output record per raw message (pure, no I/O).

Contract (docs/decisions/0001-accounting-contract.md): every record carries the source
headers ``auditstream.source.topic`` / ``.partition`` / ``.offset``; a normalized event goes
to the normalized topic, an invalid one to the dead-letter topic (original key, value and
headers plus the ``auditstream.dlq.*`` context), a repeat to the repeats topic as a small
JSON record (its key is the raw key up to 1 KiB, else the key's sha256 in hex, marked by
``auditstream.repeat.key_sha256`` / ``.original_key_size``).

No record built here is larger than the producer's ``message.max.bytes`` (less a framing
reserve); one that would be is replaced by a dead letter of the raw message (``unproducible``).

A dead letter must fit the producer's ``message.max.bytes`` whatever the broker accepted on
the raw topic (up to the broker's 1,048,588 bytes, headers included, while our own headers
add a few hundred bytes more). One that would not fit is sent **truncated**: the value
(then, if still needed, the original headers and the key) is cut to fit, and headers say so
with the original size and sha256, so nothing the broker accepted is ever lost to a
size error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from auditstream.config import Topics
from auditstream.schemas.event import format_ts
from auditstream.stream_jobs import dead_letter
from auditstream.stream_jobs.normalize import Duplicate, Invalid, Normalized, Outcome

SOURCE_PREFIX = "auditstream.source."
REPEAT_STAGE = "normalizer"
INTERNAL_ERROR = "internal_error"
UNPRODUCIBLE = "unproducible"
"""Dead-letter reason: the record made for the message could not be produced (the producer
or broker refused it), so the raw message is dead-lettered instead."""

DLQ_TRUNCATED = dead_letter.PREFIX + "truncated"
"""``value``, ``value,headers`` or ``value,headers,key``: what was cut to fit."""
DLQ_ORIGINAL_SIZE = dead_letter.PREFIX + "original_size"
"""Bytes of the original value (ASCII decimal)."""
DLQ_ORIGINAL_SHA256 = dead_letter.PREFIX + "original_sha256"
"""sha256 of the original value (hex)."""
DLQ_ORIGINAL_KEY_SIZE = dead_letter.PREFIX + "original_key_size"
DLQ_HEADERS_DROPPED = dead_letter.PREFIX + "original_headers_dropped"
"""How many of the raw message's own headers were left off to fit."""

REPEAT_KEY_MAX = 1024
"""A repeat record keeps the raw key up to this many bytes; a longer one is replaced by its
sha256 (hex), so a repeat always fits whatever key the broker accepted."""
REPEAT_KEY_SHA256 = "auditstream.repeat.key_sha256"
"""``true`` when the repeat record's key is the sha256 (hex) of the raw key."""
REPEAT_ORIGINAL_KEY_SIZE = "auditstream.repeat.original_key_size"
"""Bytes of the raw key (ASCII decimal), when it was replaced by its sha256."""

RECORD_OVERHEAD = 512
"""Bytes kept free under ``message.max.bytes`` for the record's own framing (lengths,
varints, timestamps, attributes: well under 100 bytes) with room to spare."""

Headers = list[tuple[str, bytes]]
RawHeaders = Sequence[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class Source:
    """Where a raw message was read: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def headers(self) -> Headers:
        return [
            (SOURCE_PREFIX + "topic", self.topic.encode()),
            (SOURCE_PREFIX + "partition", str(self.partition).encode()),
            (SOURCE_PREFIX + "offset", str(self.offset).encode()),
        ]


@dataclass(frozen=True)
class Record:
    """One message to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


def headers_size(headers: Sequence[tuple[str, str | bytes | None]]) -> int:
    """Bytes the headers take in a record (name and value, plus a few for their lengths)."""
    total = 0
    for name, value in headers:
        total += len(name.encode()) + _len(value) + 10
    return total


def _len(value: str | bytes | None) -> int:
    if value is None:
        return 0
    return len(value.encode() if isinstance(value, str) else value)


def _as_bytes(headers: RawHeaders) -> Headers:
    out: Headers = []
    for name, value in headers:
        if value is None:
            out.append((name, b""))
        else:
            out.append((name, value.encode() if isinstance(value, str) else value))
    return out


@dataclass(frozen=True)
class Router:
    """Turns (outcome, raw message) into the record to produce."""

    topics: Topics
    max_message_bytes: int
    """The producer's ``message.max.bytes``: no record we build is larger."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __call__(
        self,
        outcome: Outcome,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        headers: RawHeaders,
    ) -> Record:
        if isinstance(outcome, Normalized):
            record = Record(self.topics.normalized, outcome.key, outcome.value, source.headers())
            if self.fits(record):
                return record
            return self.dead_letter(
                UNPRODUCIBLE, "the normalized record would not fit", source, key, value, headers
            )
        if isinstance(outcome, Invalid):
            return self.dead_letter(
                outcome.reason.value, outcome.detail, source, key, value, headers
            )
        if isinstance(outcome, Duplicate):
            return self.repeat(outcome, source, key)
        raise TypeError(f"not a normalizer outcome: {outcome!r}")  # pragma: no cover

    def repeat(self, outcome: Duplicate, source: Source, key: bytes | None) -> Record:
        body = {
            "tenant_id": outcome.tenant_id,
            "event_id": outcome.event_id,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "stage": REPEAT_STAGE,
            "recorded_at": format_ts(self.now()),
        }
        marks: Headers = []
        if key is not None and len(key) > REPEAT_KEY_MAX:
            marks = [
                (REPEAT_KEY_SHA256, b"true"),
                (REPEAT_ORIGINAL_KEY_SIZE, str(len(key)).encode()),
            ]
            key = hashlib.sha256(key).hexdigest().encode()
        return Record(self.topics.repeats, key, orjson.dumps(body), source.headers() + marks)

    def fits(self, record: Record) -> bool:
        """No larger than ``max_message_bytes`` less the framing reserve."""
        size = _len(record.key) + len(record.value) + headers_size(record.headers)
        return size <= self.max_message_bytes - RECORD_OVERHEAD

    def bare_dead_letter(self, reason: str, detail: str, source: Source) -> Record:
        """The last resort for a message not even its dead letter could be produced for:
        no key, value or original headers, only where it was and why (the raw message
        stays on the raw topic until its retention ends)."""
        where = dead_letter.Source(source.topic, source.partition, source.offset)
        ours = source.headers() + _as_bytes(
            dead_letter.headers(reason, detail, where, (), failed_at=self.now())
        )
        return Record(self.topics.dead_letter, None, b"", ours)

    def dead_letter(
        self,
        reason: str,
        detail: str,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        headers: RawHeaders,
    ) -> Record:
        value = value or b""
        where = dead_letter.Source(source.topic, source.partition, source.offset)
        ours = source.headers() + _as_bytes(
            dead_letter.headers(reason, detail, where, (), failed_at=self.now())
        )
        original = _as_bytes(
            [(k, v) for k, v in headers if not k.startswith((dead_letter.PREFIX, SOURCE_PREFIX))]
        )
        limit = self.max_message_bytes - RECORD_OVERHEAD
        if _len(key) + len(value) + headers_size(ours + original) <= limit:
            return Record(self.topics.dead_letter, key, value, ours + original)
        return self._truncated(ours, original, source, key, value, limit)

    def _truncated(
        self,
        ours: Headers,
        original: Headers,
        source: Source,
        key: bytes | None,
        value: bytes,
        limit: int,
    ) -> Record:
        cut = ["value"]
        marks: Headers = [
            (DLQ_ORIGINAL_SIZE, str(len(value)).encode()),
            (DLQ_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        fixed = ours + marks + [(DLQ_TRUNCATED, b"value,headers,key")]  # the longest mark
        if _len(key) + headers_size(fixed + original) > limit // 2:
            marks.append((DLQ_HEADERS_DROPPED, str(len(original)).encode()))
            original = []
            cut.append("headers")
            fixed = ours + marks + [(DLQ_TRUNCATED, b"value,headers,key")]
        if key is not None and len(key) + headers_size(fixed) > limit // 2:
            marks.append((DLQ_ORIGINAL_KEY_SIZE, str(len(key)).encode()))
            fixed = ours + marks + [(DLQ_TRUNCATED, b"value,headers,key")]
            key = key[: max(0, limit // 2 - headers_size(fixed))]
            cut.append("key")
        final = ours + marks + [(DLQ_TRUNCATED, ",".join(cut).encode())] + original
        room = max(0, limit - _len(key) - headers_size(final))
        return Record(self.topics.dead_letter, key, value[:room], final)
