"""Reconcile a range of the raw topic against the store (the I/O around ``account``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from auditstream.config import Settings
from auditstream.integrity.reconcile import (
    Groups,
    OffsetRange,
    PartitionReport,
    Progress,
    account,
    expired_unprocessed,
)
from auditstream.integrity.sources import KafkaReader, StoreReader
from auditstream.schemas.limits import max_retention_days
from auditstream.stream_jobs.normalize import Normalized, Normalizer


def groups(settings: Settings) -> Groups:
    """The pipeline's consumer groups, as the normalizer and the sink name them."""
    app, t = settings.app_id, settings.topics
    return Groups(
        normalizer=f"{app}-normalizer",
        sinks=(
            (f"{app}-sink", t.normalized),
            (f"{app}-sink-dead-letters", t.dead_letter),
            (f"{app}-sink-repeats", t.repeats),
        ),
    )


@dataclass(frozen=True)
class Selection:
    """Which part of the raw topic to reconcile; None fields mean "all of it"."""

    partitions: tuple[int, ...] | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    """Exclusive."""
    from_millis: int | None = None
    to_millis: int | None = None
    """Exclusive: broker timestamps of the raw messages."""


def ranges(reader: KafkaReader, topic: str, selection: Selection) -> list[OffsetRange]:
    parts = reader.partitions(topic)
    if selection.partitions is not None:
        unknown = sorted(set(selection.partitions) - set(parts))
        if unknown:
            raise ValueError(f"{topic} has no partition {unknown[0]} (it has 0-{max(parts)})")
        parts = sorted(selection.partitions)
    out = []
    for p in parts:
        low, high = reader.watermarks(topic, p)
        lo, hi = low, high
        if selection.from_offset is not None:
            lo = max(low, selection.from_offset)
        if selection.to_offset is not None:
            hi = min(high, selection.to_offset)
        if selection.from_millis is not None:
            lo = max(lo, reader.offset_for_time(topic, p, selection.from_millis))
        if selection.to_millis is not None:
            hi = min(hi, reader.offset_for_time(topic, p, selection.to_millis))
        out.append(OffsetRange(p, lo, max(lo, hi)))
    return out


def reconcile(
    settings: Settings,
    selection: Selection,
    wait_seconds: float = 0.0,
    on_partition: Callable[[PartitionReport], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PartitionReport]:
    """One report per raw partition. With ``wait_seconds``, waits (up to that long) for
    offsets in flight to settle before reporting, so a check right after a load is exact."""
    reader = KafkaReader(settings.kafka.client_config())
    store = StoreReader(settings.clickhouse, settings.topics.raw)
    topic = settings.topics.raw
    g = groups(settings)
    deadline = clock() + wait_seconds
    retention = store.retention_days()
    while True:
        rngs = ranges(reader, topic, selection)
        committed = reader.committed(g.normalizer, topic, [r.partition for r in rngs])
        settled = all(reader.unread(group, t) == 0 for group, t in g.sinks)
        reports = [
            replace(
                account(
                    rng,
                    reader.message_offsets(topic, rng),
                    store.places(rng),
                    Progress(normalized_to=committed.get(rng.partition) or 0, settled=settled),
                    store.dead_letter_reasons(rng),
                ),
                expired=expired_unprocessed(
                    reader.watermarks(topic, rng.partition)[0], committed.get(rng.partition)
                ),
            )
            for rng in rngs
        ]
        if all(r.in_flight == 0 for r in reports) or clock() >= deadline:
            break
        sleep(1.0)
    if retention is not None:
        reports = [_past_retention(r, reader, topic, settings, retention) for r in reports]
    for report in reports:
        if on_partition is not None:
            on_partition(report)
    return reports


def _past_retention(
    report: PartitionReport, reader: KafkaReader, topic: str, settings: Settings, days: int
) -> PartitionReport:
    """Missing offsets whose event the table's TTL has deleted by now are not gaps: read
    their raw messages and judge each one's ``occurred_at`` as the normalizer parses it."""
    if not report.missing:
        return report
    now = datetime.now(UTC)
    parse = Normalizer.from_settings(
        replace_settings_retention(settings, max_retention_days(now)), now=lambda: now
    )
    horizon = now - timedelta(days=days)
    raw = reader.messages_at(topic, report.range.partition, list(report.missing))
    deleted = []
    for offset in report.missing:
        value, headers = raw.get(offset, (None, []))
        outcome = parse(value or b"", headers) if value is not None else None
        if isinstance(outcome, Normalized) and outcome.event.occurred_at <= horizon:
            deleted.append(offset)
    if not deleted:
        return report
    gone = set(deleted)
    return replace(
        report,
        missing=tuple(o for o in report.missing if o not in gone),
        retention_deleted=tuple(deleted),
    )


def replace_settings_retention(settings: Settings, days: int) -> Settings:
    return replace(settings, clickhouse=replace(settings.clickhouse, retention_days=days))


def summary(reports: Sequence[PartitionReport]) -> dict[str, int]:
    return {
        "messages": sum(r.messages for r in reports),
        "stored": sum(r.stored for r in reports),
        "dead_lettered": sum(r.dead_lettered for r in reports),
        "repeats": sum(r.repeats for r in reports),
        "in_flight": sum(r.in_flight for r in reports),
        "missing": sum(len(r.missing) for r in reports),
        "multiple": sum(len(r.multiple) for r in reports),
        "retention_deleted": sum(len(r.retention_deleted) for r in reports),
        "expired_unprocessed": sum(r.expired[1] - r.expired[0] for r in reports if r.expired),
    }
