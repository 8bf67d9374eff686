"""The pure normalizer step: bytes in, what to do with them out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from auditstream.schemas.codec import decode, encode
from auditstream.schemas.event import partition_key
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import (
    Duplicate,
    Invalid,
    Normalized,
    Normalizer,
    Reason,
)

NOW = datetime(2026, 5, 6, 7, 8, 9, 987654, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def raw_event(**overrides: Any) -> bytes:
    document: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-05-06T09:00:00.123456+02:00",
        "tenant_id": "acme",
        "actor": {"id": "u:1"},
        "action": "Deleted",
        "resource": {"type": "doc", "id": "d-1"},
    }
    document.update(overrides)
    return orjson.dumps(document)


def make(max_bytes: int = 65_536, clock: Clock | None = None, window: float = 60) -> Normalizer:
    return Normalizer(max_bytes, RecentIds(window, 1000, clock or Clock()), now=lambda: NOW)


@pytest.mark.parametrize("raw", [b"", None])
def test_empty(raw: bytes | None) -> None:
    assert make()(raw) == Invalid(Reason.EMPTY, "message has no value")


def test_oversized() -> None:
    raw = raw_event()
    outcome = make(max_bytes=len(raw) - 1)(raw)
    assert outcome == Invalid(
        Reason.OVERSIZED, f"{len(raw)} bytes is over the {len(raw) - 1}-byte limit"
    )


def test_exactly_at_the_limit_is_accepted() -> None:
    raw = raw_event()
    assert isinstance(make(max_bytes=len(raw))(raw), Normalized)


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b'{"a": 1,}', b"NaN"])
def test_invalid_json(raw: bytes) -> None:
    outcome = make()(raw)
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_JSON
    assert outcome.detail.startswith("not JSON: ")


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b'"event"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    assert make()(raw) == Invalid(Reason.INVALID_JSON, "an event is a JSON object")


def test_invalid_event_names_the_field() -> None:
    outcome = make()(raw_event(actor={"name": "x"}))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_EVENT
    assert "actor.id: Field required" in outcome.detail
    assert "actor.name: Extra inputs are not permitted" in outcome.detail


def test_unknown_action_detail() -> None:
    outcome = make()(raw_event(action="teleport"))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_EVENT
    assert outcome.detail.startswith("action: unknown action 'teleport'")


def test_normalized_event_is_canonical_and_stamped() -> None:
    outcome = make()(raw_event())
    assert isinstance(outcome, Normalized)
    event = outcome.event
    assert event.action == "delete"
    assert event.occurred_at == datetime(2026, 5, 6, 7, 0, 0, 123000, tzinfo=UTC)
    assert event.received_at == datetime(2026, 5, 6, 7, 8, 9, 987000, tzinfo=UTC)
    assert outcome.key == partition_key("acme", "u:1") == event.key
    assert outcome.value == encode(event)
    document = orjson.loads(outcome.value)
    assert document["received_at"] == "2026-05-06T07:08:09.987Z"
    assert document["action"] == "delete"
    assert decode(outcome.value) == event


def test_producer_received_at_is_ignored() -> None:
    outcome = make()(raw_event(received_at="2020-01-01T00:00:00Z"))
    assert isinstance(outcome, Normalized)
    assert outcome.event.received_at == datetime(2026, 5, 6, 7, 8, 9, 987000, tzinfo=UTC)


def test_invalid_producer_received_at_does_not_reject_the_event() -> None:
    assert isinstance(make()(raw_event(received_at="garbage")), Normalized)


def test_received_at_follows_the_clock() -> None:
    times = iter(
        [
            datetime(2026, 1, 1, 0, 0, 0, 1999, tzinfo=UTC),
            datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        ]
    )
    step = Normalizer(65_536, RecentIds(60, 100, Clock()), now=lambda: next(times))
    first, second = step(raw_event()), step(raw_event())
    assert isinstance(first, Normalized)
    assert isinstance(second, Normalized)
    assert first.event.received_at == datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    assert second.event.received_at == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_duplicate_within_the_window() -> None:
    clock = Clock()
    step = make(clock=clock, window=60)
    event_id = str(uuid.uuid4())
    assert isinstance(step(raw_event(event_id=event_id)), Normalized)
    clock.t += 30
    # same id, even with other content, is a repeat
    assert step(raw_event(event_id=event_id, action="create")) == Duplicate(event_id)


def test_same_id_after_the_window_is_normalized_again() -> None:
    clock = Clock()
    step = make(clock=clock, window=60)
    raw = raw_event()
    assert isinstance(step(raw), Normalized)
    clock.t += 61
    assert isinstance(step(raw), Normalized)


def test_events_without_an_id_are_never_duplicates() -> None:
    document = orjson.loads(raw_event())
    del document["event_id"]
    raw = orjson.dumps(document)
    step = make()
    first, second = step(raw), step(raw)
    assert isinstance(first, Normalized)
    assert isinstance(second, Normalized)
    assert first.event.event_id != second.event.event_id
    assert first.event.event_id.version == 7


def test_invalid_event_is_not_remembered() -> None:
    step = make()
    event_id = str(uuid.uuid4())
    assert isinstance(step(raw_event(event_id=event_id, action="teleport")), Invalid)
    assert isinstance(step(raw_event(event_id=event_id)), Normalized)
