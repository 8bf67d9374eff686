"""Normalize one raw event: validate, canonicalize, stamp receipt, drop repeats.

A pure step with no I/O: it takes bytes (and the message headers) and returns what should
happen to them. The Faust agent in ``normalizer.py`` does the sending. CloudEvents (binary
mode with ``ce_*`` headers, or structured mode) are unwrapped by ``cloudevents.py`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import orjson
from pydantic import ValidationError

from auditstream.schemas.codec import describe, encode
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs import cloudevents
from auditstream.stream_jobs.dedup import RecentIds


class Reason(StrEnum):
    """Why an event went to the dead-letter topic."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    INVALID_CLOUDEVENT = "invalid_cloudevent"


@dataclass(frozen=True)
class Normalized:
    event: AuditEvent
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Invalid:
    reason: Reason
    detail: str


@dataclass(frozen=True)
class Duplicate:
    event_id: str


Outcome = Normalized | Invalid | Duplicate


class Normalizer:
    def __init__(
        self,
        max_event_bytes: int,
        recent: RecentIds,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._max_bytes = max_event_bytes
        self._recent = recent
        self._now = now

    def __call__(
        self, raw: bytes | None, headers: cloudevents.HeaderItems | None = None
    ) -> Outcome:
        if not raw:
            return Invalid(Reason.EMPTY, "message has no value")
        if len(raw) > self._max_bytes:
            return Invalid(
                Reason.OVERSIZED, f"{len(raw)} bytes is over the {self._max_bytes}-byte limit"
            )
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Invalid(Reason.INVALID_JSON, f"not JSON: {exc}")
        if not isinstance(document, dict):
            return Invalid(Reason.INVALID_JSON, "an event is a JSON object")
        header_map = cloudevents.header_map(headers)
        if cloudevents.is_cloudevent(document, header_map):
            try:
                document = cloudevents.to_event_document(document, header_map)
            except cloudevents.CloudEventError as exc:
                return Invalid(Reason.INVALID_CLOUDEVENT, str(exc))
        document.pop("received_at", None)  # ours to stamp, never the producer's
        try:
            event = AuditEvent.model_validate(document)
        except ValidationError as exc:
            return Invalid(Reason.INVALID_EVENT, describe(exc))
        if self._recent.seen_before(event.event_id):
            return Duplicate(str(event.event_id))
        event = event.model_copy(update={"received_at": _ms(self._now())})
        return Normalized(event=event, key=event.key, value=encode(event))


def _ms(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
