"""Dead-letter replay's pure parts: selection, plan, the headers a replay carries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auditstream.ops.dlq import (
    REPLAY_OF,
    REPLAY_REASON,
    DeadLetter,
    Selection,
    parse_since,
    plan,
)
from auditstream.stream_jobs import dead_letter
from auditstream.stream_jobs.dead_letter import Source

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _letter(
    offset: int, reason: str = "in_future", extra: tuple[tuple[str, bytes], ...] = ()
) -> DeadLetter:
    headers = dead_letter.headers(
        reason, "why", Source("raw", 2, 40 + offset), [("traceparent", b"00-abc")]
    )
    as_bytes = tuple((k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in headers)
    as_bytes += extra
    return DeadLetter("dlq", 1, offset, 1_000 * offset, b"k", b"{}", as_bytes)


def test_parse_since_takes_ago_and_iso() -> None:
    assert parse_since("30m", NOW) == int(NOW.timestamp() * 1000) - 30 * 60_000
    assert parse_since("2d", NOW) == int(NOW.timestamp() * 1000) - 2 * 86_400_000
    assert parse_since("2026-05-01T11:00:00", NOW) == int(NOW.timestamp() * 1000) - 3_600_000
    with pytest.raises(ValueError, match="neither"):
        parse_since("yesterday", NOW)


def test_selection_by_reason_time_and_id() -> None:
    a, b = _letter(1, "in_future"), _letter(5, "invalid_json")
    assert [d.id for d in (a, b) if Selection(reason="in_future").wants(d)] == ["1:1"]
    assert [d.id for d in (a, b) if Selection(since_ms=2_000).wants(d)] == ["1:5"]
    assert [d.id for d in (a, b) if Selection(ids=("1:5",)).wants(d)] == ["1:5"]


def test_plan_skips_replayed_and_truncated() -> None:
    fresh, done = _letter(1), _letter(2)
    cut = _letter(3, extra=((dead_letter.PREFIX + "truncated", b"value"),))
    send, already, truncated = plan([fresh, done, cut], {done.position: {"replayed_to": "x"}})
    assert (send, already, truncated) == ([fresh], [done], [cut])


def test_replay_headers_keep_the_producers_and_name_the_dead_letter() -> None:
    letter = _letter(7)
    assert letter.source == "raw/2/47"
    headers = dict(letter.replay_headers(NOW))
    assert headers["traceparent"] == b"00-abc"
    assert headers[REPLAY_OF] == b"dlq/1/7"
    assert headers[REPLAY_REASON] == b"in_future"
    assert not [k for k in headers if k.startswith(("auditstream.dlq.", "auditstream.source."))]
    # a replay that failed again is a dead letter naming what it replayed
    again = _letter(9, extra=((REPLAY_OF, b"dlq/1/7"),))
    assert again.replay_of == "dlq/1/7"
    assert dict(again.replay_headers(NOW))[REPLAY_OF] == b"dlq/1/9"
