"""The detectors' decode of normalized events agrees with full validation, field for field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from auditstream.producers import sample
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs import trusted
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import Normalized, Normalizer


def normalized(document: dict[str, Any]) -> bytes:
    step = Normalizer(65_536, RecentIds(60, 10_000), now=lambda: datetime(2026, 5, 1, tzinfo=UTC))
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
    for fields in sample.events(500, seed=5, run_id="r"):
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
