"""Normalize one raw event: validate, canonicalize, check its time, stamp receipt, drop repeats.

A pure step with no I/O: it takes bytes (and the message headers) and returns what should
happen to them; the consume loop in ``normalizer.py`` does the sending. CloudEvents (binary
mode with ``ce_*`` headers, or structured mode) are unwrapped by ``cloudevents.py`` first.

The step is total: every input gives one outcome, ``Normalized``, ``Invalid`` (dead-letter
it, with the reason) or ``Duplicate`` (a repeat of an event of the same tenant seen within
the window). An event is accepted only if the store keeps it, exactly, for its retention
(docs/decisions/0004-accepted-time-range.md):

* JSON is read with integers kept exact (``pydantic_core.from_json``; orjson would round
  those beyond 64 bits to floats), and the schema refuses what it can't keep exactly;
* ``occurred_at`` older than the retention horizon (``now - AUDITSTREAM_RETENTION_DAYS``)
  would be deleted by the table's TTL at the next merge: ``outside_retention``;
* ``occurred_at`` more than ``AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS`` ahead of the clock is a
  wrong clock at the source: ``in_future``; so is one whose TTL (``occurred_at`` + retention)
  falls past 2106-02-07, where ClickHouse's ``DateTime`` ends (a retention of ~80 years).

Repeats are judged by (tenant_id, event_id): one tenant can't make another's event vanish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError
from pydantic_core import from_json

from auditstream.config import ClickHouseSettings, NormalizerSettings, Settings
from auditstream.schemas.codec import describe, encode
from auditstream.schemas.event import AuditEvent, format_ts
from auditstream.schemas.limits import DATETIME_END
from auditstream.stream_jobs import cloudevents
from auditstream.stream_jobs.dedup import RecentIds


class Reason(StrEnum):
    """Why an event went to the dead-letter topic."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    INVALID_CLOUDEVENT = "invalid_cloudevent"
    OUTSIDE_RETENTION = "outside_retention"
    """``occurred_at`` is older than the retention horizon: the TTL would delete it at once."""
    IN_FUTURE = "in_future"
    """``occurred_at`` is further ahead of the pipeline's clock than the allowed skew."""


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
    """A repeat of ``(tenant_id, event_id)`` within the window; the first one was kept."""

    event_id: str
    tenant_id: str


Outcome = Normalized | Invalid | Duplicate


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Normalizer:
    """``Normalizer(...)(raw, headers) -> Outcome``; build it with ``from_settings``."""

    def __init__(
        self,
        max_event_bytes: int,
        recent: RecentIds,
        now: Callable[[], datetime] = _utc_now,
        *,
        retention_days: int = ClickHouseSettings.retention_days,
        max_future_skew_seconds: float = NormalizerSettings.max_future_skew_seconds,
    ) -> None:
        self._max_bytes = max_event_bytes
        self._recent = recent
        self._now = now
        self._retention_days = retention_days
        self._retention = timedelta(days=retention_days)
        self._skew_seconds = max_future_skew_seconds
        self._skew = timedelta(seconds=max_future_skew_seconds)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        now: Callable[[], datetime] = _utc_now,
        clock: Callable[[], float] = time.monotonic,
        recent: RecentIds | None = None,
    ) -> Normalizer:
        """The normalizer ``settings`` describe (retention, future skew, size, repeat window).

        ``now`` stamps ``received_at`` and judges ``occurred_at``; ``clock`` (monotonic
        seconds) times the repeat window, unless ``recent`` (e.g. a transactional subclass
        of ``RecentIds``) is given.
        """
        conf = settings.normalizer
        if recent is None:
            recent = RecentIds(conf.dedup_window_seconds, conf.dedup_max_ids, clock)
        return cls(
            conf.max_event_bytes,
            recent,
            now,
            retention_days=settings.clickhouse.retention_days,
            max_future_skew_seconds=conf.max_future_skew_seconds,
        )

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
            document = from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
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
        now = self._now().astimezone(UTC)
        problem = self._outside_window(event.occurred_at, now)
        if problem is not None:
            return problem
        if self._recent.seen_before(event.tenant_id, event.event_id):
            return Duplicate(str(event.event_id), event.tenant_id)
        event = event.model_copy(update={"received_at": _ms(now)})
        return Normalized(event=event, key=event.key, value=encode(event))

    def _outside_window(self, occurred_at: datetime, now: datetime) -> Invalid | None:
        horizon = now - self._retention
        if occurred_at < horizon:
            return Invalid(
                Reason.OUTSIDE_RETENTION,
                f"occurred_at {format_ts(occurred_at)} is older than the retention horizon "
                f"{format_ts(horizon)} (now - AUDITSTREAM_RETENTION_DAYS={self._retention_days}"
                " days): the store would delete it at once. To keep it, raise "
                "AUDITSTREAM_RETENTION_DAYS and replay it from the dead-letter topic",
            )
        if occurred_at + self._retention > DATETIME_END:
            return Invalid(
                Reason.IN_FUTURE,
                f"occurred_at {format_ts(occurred_at)} + AUDITSTREAM_RETENTION_DAYS="
                f"{self._retention_days} days is past {format_ts(DATETIME_END)}, the last time "
                "the store's TTL can compute: it would delete the event at once",
            )
        latest = now + self._skew
        if occurred_at > latest:
            return Invalid(
                Reason.IN_FUTURE,
                f"occurred_at {format_ts(occurred_at)} is more than "
                f"AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS={self._skew_seconds:g} ahead of the "
                f"pipeline's clock ({format_ts(now)}): fix the source's clock, or raise the "
                "setting and replay it from the dead-letter topic",
            )
        return None


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
