"""What every adapter shares: options, the result, deterministic ids, JSON envelopes."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Options:
    tenant_id: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    """Only for timestamps without a year (classic syslog): the latest year not after this."""
    timezone: str = "UTC"
    """Zone of timestamps without an offset (classic syslog)."""


@dataclass
class Parsed:
    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


Parser = Callable[[str, Options], Parsed]


def source_event_id(at: datetime, *parts: str) -> uuid.UUID:
    """A UUIDv7 whose time is ``at`` and whose other bits hash ``parts``: the same record
    always gets the same id, and ids still sort by time."""
    ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    digest = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:10], "big")
    value = ms << 80 | 0x7 << 76 | (digest >> 68 & 0xFFF) << 64 | 0b10 << 62
    value |= digest & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def records(text: str, *envelopes: str) -> Iterator[dict[str, Any]]:
    """JSON objects from a JSON array, an object with one of ``envelopes`` holding a list
    (``Records``, ``items``), one object, or JSON Lines."""
    stripped = text.strip()
    if not stripped:
        return
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError:
        doc = None
    if doc is not None:
        yield from _unwrap(doc, envelopes)
        return
    for line in stripped.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            yield from _unwrap(json.loads(line), envelopes)
        except json.JSONDecodeError:
            yield {"__unreadable__": line[:200]}


def _unwrap(doc: Any, envelopes: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if isinstance(doc, list):
        for item in doc:
            yield from _unwrap(item, envelopes)
        return
    if not isinstance(doc, dict):
        yield {"__unreadable__": str(doc)[:200]}
        return
    for key in envelopes:
        if isinstance(doc.get(key), list):
            for item in doc[key]:
                yield from _unwrap(item, ())
            return
    yield doc


def ip_or_none(value: Any) -> str | None:
    """An IP address, or None for what is not one (CloudTrail's ``ec2.amazonaws.com``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def country(value: Any) -> str | None:
    """ISO 3166-1 alpha-2 when the source gives one (some give names: left to geolocation)."""
    return value.upper() if isinstance(value, str) and len(value) == 2 and value.isalpha() else None


def clean(event: dict[str, Any]) -> dict[str, Any]:
    """Drop what the source left empty (the schema then takes its defaults)."""
    out = {k: v for k, v in event.items() if v is not None}
    for key in ("actor", "resource", "location", "metadata"):
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if v is not None}
    if out.get("location") == {}:
        del out["location"]
    return out


def millis_or_iso(value: Any) -> datetime:
    """Unix milliseconds (GitHub's ``@timestamp``) or an ISO 8601 string."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return iso(str(value))
