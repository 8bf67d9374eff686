"""The detectors' decode of normalized events agrees with full validation, field for field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from auditstream.producers import sample
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs import trusted
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import Normalized, Normalizer

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def normalized(document: dict[str, Any]) -> bytes:
    step = Normalizer(65_536, RecentIds(60, 10_000), now=lambda: NOW)
    outcome = step(orjson.dumps(document, default=str))
    assert isinstance(outcome, Normalized), outcome
    return outcome.value


def same(value: bytes) -> None:
    expected = AuditEvent.model_validate_json(value)
    got = trusted.decode(value)
    assert got == expected
    assert got.model_fields_set == expected.model_fields_set
    assert got.actor.model_fields_set == expected.actor.model_fields_set
    assert got.resource.model_fields_set == expected.resource.model_fields_set
    assert got.model_dump() == expected.model_dump()
    assert got.model_dump_json() == expected.model_dump_json()
    assert type(got.occurred_at.tzinfo) is type(expected.occurred_at.tzinfo)
    assert got.key == expected.key


def test_agrees_with_validation_on_the_sample_traffic() -> None:
    for fields in sample.events(500, seed=5, run_id="r", end=NOW):
        same(normalized(fields))


def test_agrees_on_every_optional_field() -> None:
    same(
        normalized(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": "2026-04-01T14:00:00.123456+02:00",
                "tenant_id": "acme",
                "actor": {
                    "id": "u-1",
                    "type": "service",
                    "display_name": "Bot",
                    "email": "bot@example.com",
                    "timezone": "Europe/Berlin",
                },
                "action": "deleted",
                "resource": {"type": "Invoice", "id": "INV-7", "name": "March"},
                "outcome": "denied",
                "ip": "::ffff:203.0.113.9",
                "session_id": "s",
                "user_agent": "ua",
                "channel": "api",
                "location": {"country": "de", "city": "Berlin", "latitude": 52, "longitude": 13.4},
                "changes": [{"field": "amount", "old": 120, "new": None}, {"field": "x"}],
                "correlation_id": "c",
                "parent_event_id": str(uuid.uuid4()),
                "metadata": {"nested": {"a": [1, 2]}},
            }
        )
    )


def test_agrees_on_a_minimal_event() -> None:
    same(
        normalized(
            {
                "occurred_at": "2026-04-01T14:00:00Z",
                "tenant_id": "t",
                "actor": {"id": "u"},
                "action": "create",
                "resource": {"type": "task", "id": "1"},
            }
        )
    )


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        b'{"event_id": "x"}',
        b'{"schema_version": 2}',
        b'{"event_id":"01963d4e-1b2c-7a00-8000-000000000001","occurred_at":"2026-04-01T14:00:00Z",'
        b'"tenant_id":"t","actor":{"id":"u"},"action":"teleport","resource":{"type":"t","id":"1"}}',
        b'{"event_id":"01963d4e-1b2c-7a00-8000-000000000001","occurred_at":"2026-04-01T14:00:00",'
        b'"tenant_id":"t","actor":{"id":"u"},"action":"create","resource":{"type":"t","id":"1"}}',
        b'{"event_id":"01963d4e-1b2c-7a00-8000-000000000001","occurred_at":"2026-04-01T14:00:00Z",'
        b'"tenant_id":"t","actor":{"id":"u","role":"x"},"action":"create",'
        b'"resource":{"type":"t","id":"1"}}',
        b'{"event_id":"01963d4e-1b2c-7a00-8000-000000000001","occurred_at":"2026-04-01T14:00:00Z",'
        b'"actor":{"id":"u"},"action":"create","resource":{"type":"t","id":"1"}}',
        b'{"event_id":"01963d4e-1b2c-7a00-8000-000000000001","occurred_at":"2026-04-01T14:00:00Z",'
        b'"tenant_id":"t","actor":{"id":"u"},"action":"create","resource":{"type":"t","id":"1"},'
        b'"extra":1}',
    ],
)
def test_anything_not_canonical_is_refused(value: bytes) -> None:
    with pytest.raises(trusted.NotCanonical):
        trusted.decode(value)


def _canonical(**overrides: Any) -> bytes:
    """A canonical normalized event, then edited as a writer other than ours might."""
    document = orjson.loads(
        normalized(
            {
                "occurred_at": "2026-04-01T14:00:00Z",
                "tenant_id": "t",
                "actor": {"id": "u"},
                "action": "create",
                "resource": {"type": "task", "id": "1"},
                "changes": [{"field": "f", "new": 1}],
            }
        )
    )
    for path, value in overrides.items():
        target = document
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return json.dumps(document).encode()  # the standard library writes any integer


@pytest.mark.parametrize(
    "value",
    [
        _canonical(tenant_id="t\u202e"),
        _canonical(actor__id="u\x00"),
        _canonical(resource__type="task\u200b"),
        _canonical(resource__id="\ufeff1"),
        _canonical(session_id="s\x1b"),
        _canonical(correlation_id="c\u2066"),
        _canonical(changes__0__field="f\u200d"),
        _canonical(changes__0__new=2**64),
        _canonical(changes__0__old=[-(2**63) - 1]),
        _canonical(metadata={"a": {"b": 10**30}}),
        _canonical(metadata={"deep": json.loads("[" * 64 + "]" * 64)}),
        _canonical(occurred_at="2150-01-01T00:00:00.000Z"),
        _canonical(received_at="1969-12-31T23:59:59.999Z"),
    ],
)
def test_what_full_validation_refuses_is_not_trusted(value: bytes) -> None:
    with pytest.raises(trusted.NotCanonical):
        trusted.decode(value)
    with pytest.raises(ValidationError):
        AuditEvent.model_validate_json(value)


def test_a_float_that_may_be_a_rounded_integer_goes_to_full_validation() -> None:
    value = _canonical(metadata={"f": 1e19})
    with pytest.raises(trusted.NotCanonical):
        trusted.decode(value)
    assert AuditEvent.model_validate_json(value).metadata == {"f": 1e19}


@pytest.mark.parametrize(
    "value",
    [
        _canonical(metadata={"edge": [2**64 - 1, -(2**63), 2**53 + 1, 1e18, 0.5]}),
        _canonical(changes__0__new=2**64 - 1),
        _canonical(actor__display_name="\u202eevil\x00", user_agent="\x1b[31m"),
        _canonical(tenant_id="müller\u00a0gmbh"),
        _canonical(metadata={"deep": json.loads("[" * 63 + "]" * 63)}),
        _canonical(occurred_at="2105-12-31T23:59:59.999Z"),
    ],
)
def test_what_full_validation_accepts_is_trusted_alike(value: bytes) -> None:
    same(value)
