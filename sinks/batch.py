"""A batch of rows bounded by size and age, and the offsets it covers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    first: int
    last: int


@dataclass
class DeadLetter:
    """A message this batch sends to the dead-letter topic; the batch's offsets are
    committed only once every one of them is acknowledged (``acked``)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    acked: bool = False
    failed: str | None = None
    """Why the last delivery failed (it is produced again before the commit)."""
    sent: bool = False


@dataclass(frozen=True)
class SourceMessage:
    """What a row was built from: enough to dead-letter the original message if the store
    refuses the row (``store_refused``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


@dataclass
class Batch:
    """Rows to write and the offsets they cover (dead-lettered messages count as covered)."""

    max_rows: int
    max_seconds: float
    clock: Callable[[], float] = time.monotonic
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    ranges: dict[tuple[str, int], OffsetRange] = field(default_factory=dict)
    started: float | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sources: list[SourceMessage | None] = field(default_factory=list)
    """``rows[i]`` was built from ``sources[i]`` (None: not known)."""
    salt: str = ""
    """Part of the token: rows written in place of this batch's refused ones (the
    dead-letter loop's minimal rows) cover the same offsets but never share its tokens."""
    refused: dict[int, DeadLetter] = field(default_factory=dict)
    """Rows the store refused (index into ``rows``), dead-lettered; each letter is in
    ``dead_letters`` too, so the commit waits for it."""

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def empty(self) -> bool:
        return not self.ranges

    def cover(self, topic: str, partition: int, offset: int) -> None:
        if self.started is None:
            self.started = self.clock()
        key = (topic, partition)
        current = self.ranges.get(key)
        if current is None:
            self.ranges[key] = OffsetRange(topic, partition, offset, offset)
        else:
            self.ranges[key] = OffsetRange(
                topic, partition, min(current.first, offset), max(current.last, offset)
            )

    def add(
        self,
        row: tuple[Any, ...],
        topic: str,
        partition: int,
        offset: int,
        source: SourceMessage | None = None,
    ) -> None:
        self.cover(topic, partition, offset)
        self.rows.append(row)
        self.sources.append(source)

    def refuse(self, index: int, letter: DeadLetter) -> None:
        """Row ``index`` is dead-lettered instead of stored (once, however often the write
        is retried)."""
        if index not in self.refused:
            self.refused[index] = letter
            self.dead_letters.append(letter)

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.max_rows

    def dead_letter(self, letter: DeadLetter, topic: str, partition: int, offset: int) -> None:
        self.cover(topic, partition, offset)
        self.dead_letters.append(letter)

    def ready(self) -> bool:
        if self.empty:
            return False
        assert self.started is not None
        return len(self.rows) >= self.max_rows or self.clock() - self.started >= self.max_seconds

    def token(self) -> str:
        """Same offsets, same token: ClickHouse then ignores a retried insert of this batch."""
        spans = ",".join(
            f"{r.topic}/{r.partition}/{r.first}-{r.last}"
            for r in sorted(self.ranges.values(), key=lambda r: (r.topic, r.partition))
        )
        token = "auditstream:" + hashlib.sha256(spans.encode()).hexdigest()[:32]
        return f"{token}:{self.salt}" if self.salt else token

    def commit_offsets(self) -> list[tuple[str, int, int]]:
        """(topic, partition, next offset to read) for every partition the batch covers."""
        return [(r.topic, r.partition, r.last + 1) for r in self.ranges.values()]
