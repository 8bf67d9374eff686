"""What a dead-letter message carries besides the original bytes.

The value and key of a dead-letter message are the original bytes, untouched, so a fixed
event can be replayed as it was. Why it failed and where it came from travel in headers
(the convention of Kafka Connect's ``errors.deadletterqueue.context.headers.enable``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from auditstream.schemas.event import format_ts

PREFIX = "auditstream.dlq."


@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int


def headers(
    reason: str,
    detail: str,
    source: Source,
    original_headers: Sequence[tuple[str, bytes]] = (),
    failed_at: datetime | None = None,
) -> list[tuple[str, bytes]]:
    stamp = format_ts(failed_at or datetime.now(UTC))
    ours = [
        (PREFIX + "reason", reason.encode()),
        (PREFIX + "detail", detail.encode()[:4096]),
        (PREFIX + "topic", source.topic.encode()),
        (PREFIX + "partition", str(source.partition).encode()),
        (PREFIX + "offset", str(source.offset).encode()),
        (PREFIX + "failed_at", stamp.encode()),
    ]
    return ours + [(k, v) for k, v in original_headers if not k.startswith(PREFIX)]


def read(message_headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The dead-letter context of a message, without the prefix: ``{"reason": ...}``."""
    out: dict[str, str] = {}
    for key, value in message_headers or ():
        if key.startswith(PREFIX) and value is not None:
            out[key.removeprefix(PREFIX)] = value.decode(errors="replace")
    return out
