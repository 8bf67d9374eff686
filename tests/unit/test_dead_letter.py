"""Dead-letter context headers: written by ``headers``, read back by ``read``."""

from __future__ import annotations

from datetime import UTC, datetime

from auditstream.stream_jobs.dead_letter import PREFIX, Source, headers, read

SOURCE = Source("audit.events.raw", 3, 12345)
WHEN = datetime(2026, 2, 3, 4, 5, 6, 789123, tzinfo=UTC)


def test_headers_and_read_round_trip() -> None:
    out = headers("invalid_event", "actor.id: Field required", SOURCE, failed_at=WHEN)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in out)
    assert read(out) == {
        "reason": "invalid_event",
        "detail": "actor.id: Field required",
        "topic": "audit.events.raw",
        "partition": "3",
        "offset": "12345",
        "failed_at": "2026-02-03T04:05:06.789Z",
    }


def test_header_names_carry_the_prefix() -> None:
    names = [k for k, _ in headers("r", "d", SOURCE, failed_at=WHEN)]
    assert names == [
        PREFIX + n for n in ("reason", "detail", "topic", "partition", "offset", "failed_at")
    ]
    assert PREFIX == "auditstream.dlq."


def test_failed_at_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = read(headers("r", "d", SOURCE))["failed_at"]
    after = datetime.now(UTC)
    parsed = datetime.fromisoformat(stamp)
    assert stamp.endswith("Z")
    assert before <= parsed <= after


def test_original_headers_are_kept_after_ours() -> None:
    original = [("traceparent", b"00-abc-01"), ("content-type", b"application/json")]
    out = headers("r", "d", SOURCE, original, failed_at=WHEN)
    assert out[-2:] == original
    assert len(out) == 6 + 2


def test_original_prefix_headers_are_not_duplicated() -> None:
    # a replayed message that failed again: its old context is replaced, not repeated
    original = [
        (PREFIX + "reason", b"oversized"),
        ("traceparent", b"00-abc-01"),
        (PREFIX + "offset", b"1"),
    ]
    out = headers("invalid_event", "again", SOURCE, original, failed_at=WHEN)
    names = [k for k, _ in out]
    assert len(names) == len(set(names))
    assert ("traceparent", b"00-abc-01") in out
    context = read(out)
    assert context["reason"] == "invalid_event"
    assert context["offset"] == "12345"


def test_long_detail_is_capped() -> None:
    out = headers("r", "x" * 10_000, SOURCE, failed_at=WHEN)
    assert read(out)["detail"] == "x" * 4096


def test_read_ignores_foreign_and_empty_headers() -> None:
    message_headers: list[tuple[str, bytes | None]] = [
        ("traceparent", b"abc"),
        (PREFIX + "reason", b"empty"),
        (PREFIX + "detail", None),
    ]
    assert read(message_headers) == {"reason": "empty"}


def test_read_without_headers() -> None:
    assert read(None) == {}
    assert read([]) == {}


def test_read_replaces_undecodable_bytes() -> None:
    assert read([(PREFIX + "detail", b"bad \xff byte")]) == {"detail": "bad \ufffd byte"}


def test_capped_detail_is_still_valid_utf8() -> None:
    # 3-byte characters: a cut at exactly 4096 bytes lands inside one of them
    out = headers("r", "€" * 2000, SOURCE, failed_at=WHEN)
    value = dict(out)[PREFIX + "detail"]
    assert len(value) <= 4096
    assert value.decode("utf-8") == "€" * (4096 // 3)
