"""A normalized event's bytes -> one ``audit_events`` row, column by column."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from auditstream.schemas.codec import encode
from auditstream.sinks.rows import UnstorableEvent, to_row
from auditstream.sinks.tables import EVENT_COLUMN_NAMES, NO_RAW_OFFSET, NO_RAW_PARTITION
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import Normalized, Normalizer

EVENT_ID = uuid.UUID("01963d4e-1b2c-7a00-8000-000000000001")
PARENT_ID = uuid.UUID("01963d4e-1b2c-7a00-8000-000000000000")
RECEIVED = datetime(2026, 4, 1, 12, 0, 1, 456789, tzinfo=UTC)


def normalize(document: dict[str, Any]) -> bytes:
    step = Normalizer(65_536, RecentIds(60, 100), now=lambda: RECEIVED)
    outcome = step(orjson.dumps(document))
    assert isinstance(outcome, Normalized), outcome
    assert outcome.value == encode(outcome.event)
    return outcome.value


def full_document() -> dict[str, Any]:
    return {
        "event_id": str(EVENT_ID),
        "occurred_at": "2026-04-01T14:00:00.123456+02:00",
        "tenant_id": "acme",
        "actor": {
            "id": "u-1",
            "type": "service",
            "display_name": "Backup bot",
            "email": "bot@example.com",
            "timezone": "Europe/Berlin",
        },
        "action": "modified",
        "resource": {"type": "Document", "id": "d-9", "name": "Q1 plan"},
        "outcome": "denied",
        "ip": "::ffff:203.0.113.7",
        "session_id": "s-1",
        "user_agent": "Mozilla/5.0",
        "channel": "web",
        "location": {
            "country": "de",
            "region": "Berlin",
            "city": "Berlin",
            "latitude": 52.52,
            "longitude": 13.405,
        },
        "changes": [
            {"field": "title", "old": "Q1", "new": "Q1 plan"},
            {"field": "tags", "old": None, "new": ["a", 1]},
            {"field": "owner"},
        ],
        "correlation_id": "req-7",
        "parent_event_id": str(PARENT_ID),
        "metadata": {"source": "sync", "n": 2},
    }


def test_row_has_one_value_per_column() -> None:
    row = to_row(normalize(full_document()), 0, 0)
    assert len(row) == len(EVENT_COLUMN_NAMES)


def test_full_event_values_land_in_their_columns() -> None:
    row = dict(zip(EVENT_COLUMN_NAMES, to_row(normalize(full_document()), 4, 987), strict=True))
    assert row == {
        "event_id": EVENT_ID,
        "schema_version": 1,
        "tenant_id": "acme",
        "occurred_at": datetime(2026, 4, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "received_at": datetime(2026, 4, 1, 12, 0, 1, 456000, tzinfo=UTC),
        "actor_id": "u-1",
        "actor_type": "service",
        "actor_display_name": "Backup bot",
        "actor_email": "bot@example.com",
        "actor_timezone": "Europe/Berlin",
        "action": "update",
        "resource_type": "document",
        "resource_id": "d-9",
        "resource_name": "Q1 plan",
        "outcome": "denied",
        "ip": "203.0.113.7",
        "session_id": "s-1",
        "user_agent": "Mozilla/5.0",
        "channel": "web",
        "country": "DE",
        "region": "Berlin",
        "city": "Berlin",
        "latitude": 52.52,
        "longitude": 13.405,
        "changes.field": ["title", "tags", "owner"],
        "changes.old": ['"Q1"', "null", "null"],
        "changes.new": ['"Q1 plan"', '["a",1]', "null"],
        "correlation_id": "req-7",
        "parent_event_id": PARENT_ID,
        "metadata": '{"source":"sync","n":2}',
        "kafka_partition": 4,
        "kafka_offset": 987,
        "raw_partition": NO_RAW_PARTITION,  # no source headers: stored, position unknown
        "raw_offset": NO_RAW_OFFSET,
        "chain_seq": 0,  # the writer links the row into its chain
        "chain_prev": "",
        "record_hash": "",
    }


def test_timestamps_are_aware_utc() -> None:
    row = dict(zip(EVENT_COLUMN_NAMES, to_row(normalize(full_document()), 0, 0), strict=True))
    for column in ("occurred_at", "received_at"):
        assert row[column].utcoffset().total_seconds() == 0


def test_minimal_event_fills_defaults() -> None:
    document = {
        "event_id": str(EVENT_ID),
        "occurred_at": "2026-04-01T00:00:00Z",
        "tenant_id": "t",
        "actor": {"id": "a"},
        "action": "login",
        "resource": {"type": "session", "id": "x"},
    }
    row = dict(zip(EVENT_COLUMN_NAMES, to_row(normalize(document), 1, 2), strict=True))
    assert row["action"] == "sign_in"
    assert row["actor_type"] == "member"
    assert row["outcome"] == "success"
    assert row["channel"] == "other"
    for column in (
        "actor_display_name",
        "actor_email",
        "actor_timezone",
        "resource_name",
        "ip",
        "session_id",
        "user_agent",
        "country",
        "region",
        "city",
        "correlation_id",
    ):
        assert row[column] == "", column
    assert row["latitude"] is None
    assert row["longitude"] is None
    assert row["changes.field"] == row["changes.old"] == row["changes.new"] == []
    assert row["parent_event_id"] is None
    assert row["metadata"] == "{}"
    assert row["received_at"] == datetime(2026, 4, 1, 12, 0, 1, 456000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        orjson.dumps({"event_id": "not-a-uuid"}),
        orjson.dumps({"event_id": 5}),
    ],
)
def test_garbage_is_unstorable(value: bytes) -> None:
    with pytest.raises(UnstorableEvent):
        to_row(value, 0, 0)


def _broken(**changes: Any) -> bytes:
    document = orjson.loads(normalize(full_document()))
    document.update(changes)
    return orjson.dumps({k: v for k, v in document.items() if v is not ...})


@pytest.mark.parametrize(
    "value",
    [
        _broken(received_at=...),  # a raw event that skipped the normalizer
        _broken(occurred_at="yesterday"),
        _broken(occurred_at=12),
        _broken(actor="u-1"),
        _broken(resource={"type": "doc"}),
        _broken(location="Berlin"),
        _broken(changes=[1]),
        _broken(parent_event_id="nope"),
    ],
)
def test_malformed_normalized_event_is_unstorable(value: bytes) -> None:
    with pytest.raises(UnstorableEvent) as info:
        to_row(value, 0, 0)
    assert info.value.__cause__ is not None
    assert str(info.value).startswith(type(info.value.__cause__).__name__ + ": ")


def test_unstorable_is_a_value_error() -> None:
    assert issubclass(UnstorableEvent, ValueError)
