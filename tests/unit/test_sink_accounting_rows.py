"""Accounting rows (dead letters, repeats, raw positions) and the rate-limited log."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

import pytest

from auditstream.infra.ratelog import RateLimitedLog
from auditstream.sinks.rows import (
    Record,
    UnstorableEvent,
    dead_letter_row,
    raw_position,
    repeat_row,
)
from auditstream.sinks.tables import DEAD_LETTER_COLUMNS, NO_RAW_OFFSET, NO_RAW_PARTITION

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def columns(row: tuple[object, ...]) -> dict[str, object]:
    return dict(zip((n for n, _ in DEAD_LETTER_COLUMNS), row, strict=True))


def test_raw_position_from_headers_or_none() -> None:
    ok = {"auditstream.source.partition": b"3", "auditstream.source.offset": b"99"}
    assert raw_position(ok) == (3, 99)
    assert raw_position({}) is None
    assert raw_position({**ok, "auditstream.source.offset": b"-1"}) is None
    assert raw_position({**ok, "auditstream.source.partition": b"x"}) is None


def test_a_dead_letter_of_the_normalizer_is_recorded_at_its_raw_position() -> None:
    payload = b"y" * 70_000
    headers = {
        "auditstream.dlq.reason": b"too_large",
        "auditstream.dlq.detail": b"70000 bytes",
        "auditstream.dlq.topic": b"audit.events.raw",
        "auditstream.dlq.partition": b"1",
        "auditstream.dlq.offset": b"42",
        "auditstream.dlq.failed_at": b"2026-06-15T12:00:00.000Z",
        "auditstream.dlq.original_size": b"2000000",
        "auditstream.dlq.original_sha256": b"ab" * 32,
    }
    row = columns(dead_letter_row(Record("audit.events.dlq", 0, 7, payload, b"k", headers)))
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
        "audit.events.raw",
        1,
        42,
    )
    assert row["reason"] == "too_large"
    assert row["failed_at"] == NOW
    assert len(row["payload"]) == 65_536  # type: ignore[arg-type]
    assert row["payload_size"] == 70_000
    assert row["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert row["payload_truncated"] is True
    assert (row["original_size"], row["original_sha256"]) == (2_000_000, "ab" * 32)


def test_a_sink_dead_letter_points_at_the_raw_offset_of_its_event() -> None:
    headers = {
        "auditstream.dlq.reason": b"outside_retention",
        "auditstream.dlq.topic": b"audit.events",
        "auditstream.dlq.partition": b"2",
        "auditstream.dlq.offset": b"5",
        "auditstream.source.topic": b"audit.events.raw",
        "auditstream.source.partition": b"0",
        "auditstream.source.offset": b"17",
    }
    row = columns(dead_letter_row(Record("audit.events.dlq", 0, 8, b"{}", None, headers)))
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
        "audit.events.raw",
        0,
        17,
    )
    assert (row["failed_topic"], row["failed_partition"], row["failed_offset"]) == (
        "audit.events",
        2,
        5,
    )


def test_a_dead_letter_without_headers_is_still_recorded() -> None:
    row = columns(dead_letter_row(Record("dlq", 0, 9, b"junk"), now=NOW))
    assert row["reason"] == "unknown"
    assert row["source_partition"] == NO_RAW_PARTITION
    assert row["source_offset"] == NO_RAW_OFFSET
    assert row["failed_at"] == NOW
    assert row["key"] == b""


@pytest.mark.parametrize(
    "value",
    [b"not json", b"{}", b'{"tenant_id": "a", "event_id": "x"}', b'{"source_partition": -1}'],
)
def test_a_malformed_repeat_record_is_unstorable(value: bytes) -> None:
    with pytest.raises(UnstorableEvent):
        repeat_row(Record("repeats", 0, 0, value))


def test_rate_limited_log_writes_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    rate = RateLimitedLog(logging.getLogger("t"), every=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        assert rate.warning("c", "down: %s", "x")
        for _ in range(100):
            now[0] += 0.1
            assert not rate.warning("c", "down: %s", "x")
        now[0] = 31
        assert rate.warning("c", "down: %s", "x")
        rate.resolved("c", "up again")
        rate.resolved("c", "up again")
    assert [r.getMessage() for r in caplog.records] == [
        "down: x",
        "down: x (100 more like this in the last 30 s)",
        "up again",
    ]


def test_other_libraries_retry_warnings_are_bounded_ours_pass() -> None:
    from auditstream.infra.ratelog import LibraryLogFilter

    now = [0.0]
    limit = LibraryLogFilter(every=30, clock=lambda: now[0])

    def record(name: str, msg: str, *args: object, level: int = logging.WARNING) -> bool:
        return limit.filter(logging.LogRecord(name, level, __file__, 1, msg, args, None))

    assert record("urllib3.connectionpool", "Retrying (%r) after %r", 1, 2)
    assert not record("urllib3.connectionpool", "Retrying (%r) after %r", 3, 4)
    assert record("auditstream.sinks.kafka", "%s [%s] %s", "FAIL", "c1", "down")
    assert not record("auditstream.sinks.kafka", "%s [%s] %s", "FAIL", "c2", "down")
    assert record("auditstream.sinks.kafka", "%s [%s] %s", "GETPID", "p1", "retrying")
    assert record("auditstream.sinks.consumer", "%s: assigned %s", "t", [0])
    assert record("auditstream.sinks.consumer", "%s: assigned %s", "t", [0])
    now[0] = 31
    assert record("urllib3.connectionpool", "Retrying (%r) after %r", 1, 2)
