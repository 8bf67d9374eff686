"""The sink's writes against a real (embedded) ClickHouse: identity, repeats, partitions,
retention, the accounting tables. No Kafka here; the loops are tested in test_sink_*."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.producers.sample import events as sample_events
from auditstream.schemas import AuditEvent
from auditstream.schemas.codec import encode
from auditstream.sinks import tables
from auditstream.sinks.batch import Batch
from auditstream.sinks.rows import to_row
from auditstream.sinks.tables import EVENTS
from auditstream.sinks.writer import BatchWriter

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(embedded: Any) -> Iterator[str]:
    name = f"store_{uuid.uuid4().hex[:10]}"
    embedded.command(f"CREATE DATABASE {name}")
    tables.ensure(embedded, name, 3650)
    tables.ensure_accounting(embedded, name, 3650, 3650)
    yield name
    embedded.command(f"DROP DATABASE {name}")


def event_bytes(tenant: str, event_id: uuid.UUID, occurred_at: datetime, seed: int = 1) -> bytes:
    fields = next(iter(sample_events(1, seed=seed)))
    fields.update(tenant_id=tenant, occurred_at=occurred_at)
    return encode(AuditEvent(**fields, event_id=event_id, received_at=occurred_at))


def batch_of(rows: list[tuple[Any, ...]], first_offset: int = 0) -> Batch:
    batch = Batch(max_rows=1_000_000, max_seconds=60)
    for i, row in enumerate(rows):
        batch.add(row, "t.audit.events", 0, first_offset + i)
    return batch


def stored(client: Any, database: str) -> list[tuple[str, str]]:
    rows = client.query(
        f"SELECT tenant_id, toString(event_id) FROM `{database}`.audit_events "
        "ORDER BY tenant_id"
    ).result_rows
    return [(r[0], r[1]) for r in rows]


def test_same_event_id_in_two_tenants_is_stored_for_both(embedded: Any, database: str) -> None:
    """Identity is (tenant_id, event_id): another tenant sending acme's id first must not
    make acme's event vanish, in one batch or in two."""
    shared = uuid.uuid4()
    later = uuid.uuid4()
    writer = BatchWriter(embedded, database, EVENTS)
    when = NOW - timedelta(days=1)
    writer.write(batch_of([to_row(event_bytes("evil", shared, when), 0, 0)]))
    writer.write(batch_of([to_row(event_bytes("acme", shared, when), 0, 1)], first_offset=1))
    writer.write(
        batch_of(
            [
                to_row(event_bytes("evil", later, when), 0, 2),
                to_row(event_bytes("acme", later, when), 0, 3),
            ],
            first_offset=2,
        )
    )
    assert sorted(stored(embedded, database)) == [
        ("acme", str(shared)),
        ("acme", str(later)),
        ("evil", str(shared)),
        ("evil", str(later)),
    ]
