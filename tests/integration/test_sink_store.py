"""The sink's writes against a real (embedded) ClickHouse: identity, repeats, partitions,
retention, the accounting tables. No Kafka here; the loops are tested in test_sink_*."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
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
        f"SELECT tenant_id, toString(event_id) FROM `{database}`.audit_events ORDER BY tenant_id"
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
    assert sorted(stored(embedded, database)) == sorted(
        [
            ("acme", str(shared)),
            ("acme", str(later)),
            ("evil", str(shared)),
            ("evil", str(later)),
        ]
    )


def with_source(value: bytes, partition: int, offset: int) -> dict[str, bytes]:
    return {
        "auditstream.source.topic": b"t.audit.events.raw",
        "auditstream.source.partition": str(partition).encode(),
        "auditstream.source.offset": str(offset).encode(),
    }


def repeats(client: Any, database: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in client.query(
            "SELECT source_topic, source_partition, source_offset, tenant_id, "
            f"toString(event_id), stage FROM `{database}`.audit_repeats FINAL "
            "ORDER BY source_offset"
        ).result_rows
    ]


def test_skip_from_another_raw_position_is_a_repeat_redelivery_is_not(
    embedded: Any, database: str
) -> None:
    writer = BatchWriter(embedded, database, EVENTS, raw_topic="t.audit.events.raw")
    event_id = uuid.uuid4()
    value = event_bytes("acme", event_id, NOW)

    def row(raw_offset: int, offset: int) -> tuple[Any, ...]:
        return to_row(value, 0, offset, with_source(value, 2, raw_offset))

    first = writer.write(batch_of([row(10, 0)]))
    assert (first.inserted, first.repeats) == (1, 0)
    # The same raw record read again (a crash before the commit): no repeat.
    again = writer.write(batch_of([row(10, 0)], first_offset=0))
    assert (again.inserted, again.already_stored, again.repeats) == (0, 1, 0)
    # The same event id from another raw offset, in a later batch and twice in one batch.
    later = writer.write(batch_of([row(11, 1), row(12, 2), row(12, 2)], first_offset=1))
    assert (later.inserted, later.already_stored, later.repeats) == (0, 3, 3)
    assert stored(embedded, database) == [("acme", str(event_id))]
    assert repeats(embedded, database) == [
        ("t.audit.events.raw", 2, 11, "acme", str(event_id), "sink"),
        ("t.audit.events.raw", 2, 12, "acme", str(event_id), "sink"),
    ]
    raw = embedded.query(
        f"SELECT raw_partition, raw_offset FROM `{database}`.audit_events"
    ).result_rows
    assert [tuple(r) for r in raw] == [(2, 10)]


def test_a_resend_with_another_occurred_at_is_a_repeat_not_a_second_row(
    embedded: Any, database: str
) -> None:
    """Identity is (tenant, event_id), whatever the copy says about its time: a producer
    re-sending an id with another ``occurred_at`` (a clock fixed, a retry re-stamped) days
    later, beyond the normalizer's repeat window, is recorded as a repeat and not stored
    again, whether the copy says later or earlier."""
    writer = BatchWriter(embedded, database, EVENTS, raw_topic="t.audit.events.raw")
    event_id = uuid.uuid4()
    first_time = NOW - timedelta(days=3)

    def row(occurred_at: datetime, raw_offset: int, offset: int) -> tuple[Any, ...]:
        value = event_bytes("acme", event_id, occurred_at)
        return to_row(value, 0, offset, with_source(value, 1, raw_offset))

    assert writer.write(batch_of([row(first_time, 5, 0)])).inserted == 1
    later = writer.write(batch_of([row(NOW, 6, 1)], first_offset=1))
    earlier = writer.write(batch_of([row(first_time - timedelta(days=40), 7, 2)], first_offset=2))
    assert (later.inserted, later.repeats) == (0, 1)
    assert (earlier.inserted, earlier.repeats) == (0, 1)
    assert stored(embedded, database) == [("acme", str(event_id))]
    assert [r[2] for r in repeats(embedded, database)] == [6, 7]


def test_a_batch_over_150_monthly_partitions_is_stored(embedded: Any, database: str) -> None:
    """ClickHouse refuses one INSERT touching > 100 partitions; the writer splits."""
    start = datetime(2017, 2, 15, tzinfo=UTC)  # inside the 10 years kept
    months = [start.replace(year=2017 + (m + 1) // 12, month=(m + 1) % 12 + 1) for m in range(150)]
    rows = [
        to_row(event_bytes(f"tenant-{i % 3}", uuid.uuid4(), when), 0, i)
        for i, when in enumerate(months * 2)
    ]
    writer = BatchWriter(embedded, database, EVENTS)
    batch = batch_of(rows)
    result = writer.write(batch)
    assert result.inserted == 300
    assert result.inserts == 3  # 150 months in chunks of 50
    count = f"SELECT count(), uniqExact(toYYYYMM(occurred_at)) FROM `{database}`.audit_events"
    assert tuple(embedded.query(count).result_rows[0]) == (300, 150)
    # Retried as a whole (the commit was lost): nothing twice.
    assert writer.write(batch).inserted == 0
    assert tuple(embedded.query(count).result_rows[0]) == (300, 150)


class PartialFirstInsert:
    """The real client, but the first INSERT lands only its first month's part, then
    fails (as when ClickHouse wrote some partitions' parts of an insert and not others)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def insert(self, table: str, data: list[Any], **kwargs: Any) -> Any:
        if self.failed:
            return self._client.insert(table, data, **kwargs)
        self.failed = True
        times = data[kwargs["column_names"].index("occurred_at")]
        first = min((t.year, t.month) for t in times)
        keep = [i for i, t in enumerate(times) if (t.year, t.month) == first]
        self._client.insert(table, [[col[i] for i in keep] for col in data], **kwargs)
        raise ConnectionError("simulated: the connection dropped mid-insert")


def test_a_retry_after_part_of_an_insert_landed_stores_the_rest(
    embedded: Any, database: str
) -> None:
    """The retry's remaining rows must not reuse the failed attempt's token: ClickHouse
    would take them for the part that landed (same token, same part index) and drop them."""
    from auditstream.sinks.writer import WriteFailed

    may, june = NOW.replace(month=5), NOW
    rows = [to_row(event_bytes("acme", uuid.uuid4(), may), 0, i) for i in range(4)]
    rows += [to_row(event_bytes("acme", uuid.uuid4(), june), 0, 4 + i) for i in range(6)]
    batch = batch_of(rows)
    writer = BatchWriter(PartialFirstInsert(embedded), database, EVENTS)
    with pytest.raises(WriteFailed):
        writer.write(batch)
    count = f"SELECT count() FROM `{database}`.audit_events"
    assert embedded.command(count) == 4
    assert writer.write(batch).inserted == 6
    assert embedded.command(count) == 10


def test_retention_is_read_from_the_table(embedded: Any, database: str) -> None:
    from auditstream.sinks.horizon import read_ttl_days

    assert read_ttl_days(embedded, database, "audit_events", "occurred_at") == 3650
    embedded.command(tables.retention_ddl(database, 30))
    assert read_ttl_days(embedded, database, "audit_events", "occurred_at") == 30
    assert read_ttl_days(embedded, database, "audit_dead_letters", "failed_at") == 3650


def test_accounting_rows_are_stored_once_per_source_position(embedded: Any, database: str) -> None:
    from auditstream.sinks.rows import Record, dead_letter_row, repeat_row
    from auditstream.sinks.tables import DEAD_LETTERS, REPEATS
    from auditstream.stream_jobs import dead_letter

    payload = b"x" * 70_000
    headers = dict(
        dead_letter.headers(
            "too_large", "70000 bytes", dead_letter.Source("t.audit.events.raw", 1, 42), []
        )
    )
    letter = Record("t.audit.events.dlq", 0, 7, payload, b"acme:u1", headers)  # type: ignore[arg-type]
    dlq = BatchWriter(embedded, database, DEAD_LETTERS)
    batch = Batch(max_rows=10, max_seconds=1)
    batch.add(dead_letter_row(letter), "t.audit.events.dlq", 0, 7)
    dlq.write(batch)
    again = Batch(max_rows=10, max_seconds=1)  # redelivered, read in another batch
    again.add(dead_letter_row(letter), "t.audit.events.dlq", 0, 7)
    again.add(dead_letter_row(letter), "t.audit.events.dlq", 0, 7)
    dlq.write(again)
    got = embedded.query(
        "SELECT source_topic, source_partition, source_offset, reason, length(payload), "
        f"payload_size, payload_truncated, key FROM `{database}`.audit_dead_letters FINAL"
    ).result_rows
    assert [tuple(r) for r in got] == [
        ("t.audit.events.raw", 1, 42, "too_large", 65_536, 70_000, True, "acme:u1")
    ]
    event_id = uuid.uuid4()
    record = Record(
        "t.audit.events.repeats",
        0,
        3,
        orjson.dumps(
            {
                "tenant_id": "acme",
                "event_id": str(event_id),
                "source_topic": "t.audit.events.raw",
                "source_partition": 1,
                "source_offset": 43,
                "stage": "normalizer",
                "recorded_at": "2026-06-15T12:00:00.000Z",
            }
        ),
    )
    batch = Batch(max_rows=10, max_seconds=1)
    batch.add(repeat_row(record), record.topic, 0, 3)
    BatchWriter(embedded, database, REPEATS).write(batch)
    assert repeats(embedded, database) == [
        ("t.audit.events.raw", 1, 43, "acme", str(event_id), "normalizer")
    ]


def test_a_table_made_before_the_raw_columns_gains_them(embedded: Any) -> None:
    name = f"store_{uuid.uuid4().hex[:10]}"
    embedded.command(f"CREATE DATABASE {name}")
    try:
        old_ddl = tables.events_ddl(name, 3650)
        for column in ("raw_partition", "raw_offset"):
            old_ddl = "\n".join(line for line in old_ddl.splitlines() if f"`{column}`" not in line)
        embedded.command(old_ddl)
        embedded.command(
            f"INSERT INTO `{name}`.audit_events (event_id, tenant_id, occurred_at, received_at) "
            "VALUES (generateUUIDv4(), 'acme', now64(3), now64(3))"
        )
        tables.ensure(embedded, name, 3650)
        tables.ensure_accounting(embedded, name, 3650, 730)
        tables.ensure_accounting(embedded, name, 3650, 730)  # twice: nothing changes
        old = embedded.query(f"SELECT raw_partition, raw_offset FROM `{name}`.audit_events")
        assert [tuple(r) for r in old.result_rows] == [(2**32 - 1, 2**64 - 1)]
        value = event_bytes("acme", uuid.uuid4(), NOW)
        BatchWriter(embedded, name, EVENTS).write(
            batch_of([to_row(value, 0, 0, with_source(value, 1, 5))])
        )
        assert (
            embedded.command(f"SELECT count() FROM `{name}`.audit_events WHERE raw_offset = 5") == 1
        )
    finally:
        embedded.command(f"DROP DATABASE {name}")


def test_accounting_ttl_follows_a_longer_retention_and_is_never_shortened(
    embedded: Any, database: str
) -> None:
    from auditstream.sinks.horizon import read_ttl_days

    def accounting() -> tuple[int | None, int | None]:
        return (
            read_ttl_days(embedded, database, "audit_dead_letters", "failed_at"),
            read_ttl_days(embedded, database, "audit_repeats", "recorded_at"),
        )

    assert accounting() == (3650, 3650)
    tables.set_retention(embedded, database, EVENTS, 5000)  # auditstream retention set
    tables.ensure_accounting(embedded, database, 365, 730)
    assert accounting() == (5000, 5000)
    tables.set_retention(embedded, database, EVENTS, 30)
    tables.ensure_accounting(embedded, database, 365, 730)
    assert accounting() == (5000, 5000)
