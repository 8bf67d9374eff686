"""What a dead-letter message carries besides the original bytes.

The value and key of a dead-letter message are the original bytes, untouched, so a fixed
event can be replayed as it was. Why it failed and where it came from travel in headers
(the convention of Kafka Connect's ``errors.deadletterqueue.context.headers.enable``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditstream.schemas.event import format_ts

PREFIX = "auditstream.dlq."

Headers = list[tuple[str, str | bytes | None]]
"""Kafka message headers as confluent-kafka types them."""


@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int


def headers(
    reason: str,
    detail: str,
    source: Source,
    original_headers: Iterable[tuple[str, str | bytes | None]] = (),
    failed_at: datetime | None = None,
) -> Headers:
    stamp = format_ts(failed_at or datetime.now(UTC))
    ours: Headers = [
        (PREFIX + "reason", reason.encode()),
        (PREFIX + "detail", detail.encode()[:4096].decode(errors="ignore").encode()),
        (PREFIX + "topic", source.topic.encode()),
        (PREFIX + "partition", str(source.partition).encode()),
        (PREFIX + "offset", str(source.offset).encode()),
        (PREFIX + "failed_at", stamp.encode()),
    ]
    return ours + [(k, v) for k, v in original_headers if not k.startswith(PREFIX)]


def read(
    message_headers: Iterable[tuple[str, str | bytes | None]] | Mapping[str, Any] | None,
) -> dict[str, str]:
    """The dead-letter context of a message, without the prefix: ``{"reason": ...}``."""
    if isinstance(message_headers, Mapping):
        message_headers = list(message_headers.items())
    out: dict[str, str] = {}
    for key, value in message_headers or ():
        if key.startswith(PREFIX) and value is not None:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            out[key.removeprefix(PREFIX)] = text
    return out
