"""Wire bytes <-> AuditEvent, and error text a producer can act on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from auditstream.schemas.codec import decode, describe, encode
from auditstream.schemas.event import AuditEvent


def full_doc() -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-03-04T07:06:07.123456+02:00",
        "received_at": "2026-03-04T05:06:08.5Z",
        "tenant_id": "acme",
        "actor": {
            "id": "u-1",
            "type": "api",
            "display_name": "Ann",
            "email": "ann@example.com",
            "timezone": "Europe/Berlin",
        },
        "action": "Deleted",
        "resource": {"type": "Document", "id": "d-1", "name": "Plan"},
        "outcome": "failure",
        "ip": "::ffff:10.0.0.1",
        "session_id": "s-1",
        "user_agent": "curl/8",
        "channel": "cli",
        "location": {"country": "de", "region": "BE", "city": "Berlin", "latitude": 52.5},
        "changes": [{"field": "title", "old": "a", "new": {"x": [1, 2]}}],
        "correlation_id": "c-1",
        "parent_event_id": str(uuid.uuid4()),
        "metadata": {"k": [1, "two", None], "n": 1.5},
    }


def errors(raw: bytes) -> str:
    with pytest.raises(ValidationError) as info:
        decode(raw)
    return describe(info.value)


def test_round_trip_full_event() -> None:
    event = AuditEvent.model_validate(full_doc())
    assert decode(encode(event)) == event


def test_round_trip_minimal_event() -> None:
    event = AuditEvent.model_validate(
        {
            "occurred_at": "2026-01-01T00:00:00Z",
            "tenant_id": "t",
            "actor": {"id": "a"},
            "action": "create",
            "resource": {"type": "doc", "id": "1"},
        }
    )
    assert decode(encode(event)) == event


def test_encode_is_compact_json_without_nulls() -> None:
    event = AuditEvent.model_validate(
        {
            "occurred_at": "2026-01-01T00:00:00Z",
            "tenant_id": "t",
            "actor": {"id": "a"},
            "action": "create",
            "resource": {"type": "doc", "id": "1"},
        }
    )
    raw = encode(event)
    assert isinstance(raw, bytes)
    assert b"null" not in raw
    assert b": " not in raw
    assert b", " not in raw
    document = orjson.loads(raw)
    for absent in ("received_at", "ip", "location", "session_id", "parent_event_id"):
        assert absent not in document
    assert document["event_id"] == str(event.event_id)


def test_encode_writes_canonical_values_and_timestamps() -> None:
    document = orjson.loads(encode(AuditEvent.model_validate(full_doc())))
    assert document["occurred_at"] == "2026-03-04T05:06:07.123Z"
    assert document["received_at"] == "2026-03-04T05:06:08.500Z"
    assert document["action"] == "delete"
    assert document["outcome"] == "failure"
    assert document["ip"] == "10.0.0.1"
    assert document["resource"]["type"] == "document"
    assert document["location"]["country"] == "DE"
    assert document["changes"] == [{"field": "title", "old": "a", "new": {"x": [1, 2]}}]


def test_encode_keeps_null_inside_json_values() -> None:
    # exclude_none drops unset fields, but a None inside metadata is data
    document = orjson.loads(encode(AuditEvent.model_validate(full_doc())))
    assert document["metadata"] == {"k": [1, "two", None], "n": 1.5}


@pytest.mark.parametrize(
    "occurred_at",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2105, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
    ids=str,
)
def test_round_trip_any_representable_timestamp(occurred_at: datetime) -> None:
    event = AuditEvent.model_validate({**full_doc(), "occurred_at": occurred_at})
    raw = encode(event)
    assert orjson.loads(raw)["occurred_at"][:4] == f"{occurred_at.year:04d}"
    assert decode(raw) == event


@pytest.mark.parametrize(
    "stamp",
    [
        "0999-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2106-01-01T00:00:00Z",
        "2105-12-31T23:30:00-01:00",
        "2200-01-01T00:00:00Z",
    ],
)
def test_implausible_timestamps_are_refused(stamp: str) -> None:
    # The table's TTL is computed in ClickHouse's DateTime, which ends in February 2106; the
    # model refuses what the store can't keep rather than let the sink store it and the TTL
    # delete it at once.
    with pytest.raises(ValidationError, match="occurred_at"):
        AuditEvent.model_validate({**full_doc(), "occurred_at": stamp})


def test_describe_names_the_field() -> None:
    document = full_doc()
    del document["actor"]["id"]
    assert errors(orjson.dumps(document)) == "actor.id: Field required"


def test_describe_strips_value_error_prefix() -> None:
    message = errors(orjson.dumps({**full_doc(), "ip": "nope"}))
    assert message == "ip: 'nope' is not an IPv4 or IPv6 address"
    assert "Value error" not in message


def test_describe_joins_several_problems() -> None:
    document = full_doc()
    del document["tenant_id"]
    document["changes"] = [{"old": 1}]
    message = errors(orjson.dumps(document))
    assert message.split("; ") == ["tenant_id: Field required", "changes.0.field: Field required"]


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (b"[1, 2]", "event: Input should be an object"),
        (b"{", "event: Invalid JSON"),
        (b"", "event: Invalid JSON"),
    ],
)
def test_describe_whole_document_problems_say_event(raw: bytes, start: str) -> None:
    assert errors(raw).startswith(start)
