"""Ground truth: one ``Label`` per injected scenario, written as one JSON line each.

A label says which tenant and subject (an actor id, or a source IP for IP-scoped rules) the
scenario is about, over which event-time window, which rules must fire (``expect``), may
fire as a side effect (``tolerate``: a brute-forced sign-in from abroad is also a new
country), and must stay quiet (``forbid``: the point of a benign look-alike).
``emitted_ms`` holds when the SDK accepted each of its events (wall clock, Unix ms): what
detection latency is measured from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson

from auditstream.schemas.event import format_ts


class Kind(StrEnum):
    ATTACK = "attack"
    BENIGN = "benign"


@dataclass(frozen=True)
class Label:
    id: str
    type: str
    kind: Kind
    tenant_id: str
    subject: str
    subject_kind: str
    """``actor`` or ``ip``."""
    window_start: datetime
    window_end: datetime
    expect: tuple[str, ...] = ()
    tolerate: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    description: str = ""
    event_ids: tuple[str, ...] = ()
    emitted_ms: dict[str, int] = field(default_factory=dict)

    def with_emitted(self, emitted: dict[str, int]) -> Label:
        return replace(self, emitted_ms=dict(emitted))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "kind": self.kind.value,
            "tenant_id": self.tenant_id,
            "subject": self.subject,
            "subject_kind": self.subject_kind,
            "window_start": format_ts(self.window_start),
            "window_end": format_ts(self.window_end),
            "expect": list(self.expect),
            "tolerate": list(self.tolerate),
            "forbid": list(self.forbid),
            "description": self.description,
            "event_ids": list(self.event_ids),
            "emitted_ms": self.emitted_ms,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Label:
        return cls(
            id=doc["id"],
            type=doc["type"],
            kind=Kind(doc["kind"]),
            tenant_id=doc["tenant_id"],
            subject=doc["subject"],
            subject_kind=doc["subject_kind"],
            window_start=datetime.fromisoformat(doc["window_start"]),
            window_end=datetime.fromisoformat(doc["window_end"]),
            expect=tuple(doc.get("expect", ())),
            tolerate=tuple(doc.get("tolerate", ())),
            forbid=tuple(doc.get("forbid", ())),
            description=doc.get("description", ""),
            event_ids=tuple(doc.get("event_ids", ())),
            emitted_ms={k: int(v) for k, v in doc.get("emitted_ms", {}).items()},
        )


class LabelWriter:
    """Appends labels to a JSONL file, one line each, flushed at once (safe to tail)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = path.open("wb")
        self.written = 0

    def write(self, label: Label) -> None:
        self._file.write(orjson.dumps(label.to_json()) + b"\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LabelWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_labels(path: Path) -> list[Label]:
    return list(_read(path.read_bytes().splitlines()))


def _read(lines: Iterable[bytes]) -> Iterator[Label]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield Label.from_json(orjson.loads(line))
        except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
            raise ValueError(f"label line {n} is not a label: {exc}") from None
