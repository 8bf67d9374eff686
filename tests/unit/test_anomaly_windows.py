"""The per-actor window state machine and the partition watermark: closing by event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from auditstream.detectors.anomaly.features import EventFacts, millis
from auditstream.detectors.anomaly.windows import (
    ClosedWindow,
    PartitionClock,
    Verdict,
    WindowRules,
    close_due,
    forgettable,
    has_open,
    log_end,
    observe,
    read_to_end,
)

H = datetime(2026, 11, 20, 10, tzinfo=UTC)
HOUR = 3_600_000
RULES = WindowRules(lateness_ms=5 * 60_000, idle_margin_ms=15 * 60_000)
NOW = millis(H + timedelta(days=1))


def facts(at: datetime, n: int = 0, action: str = "update") -> EventFacts:
    return EventFacts(
        millis(at), action, False, f"task\x1ft{n}", "", f"00000000-0000-0000-0000-{n:012d}"
    )


OFFSETS = iter(range(10**9))


def feed(
    state: dict[str, Any], at: datetime, n: int = 0, now: int = NOW, offset: int | None = None
) -> tuple[Verdict, list[ClosedWindow]]:
    at_offset = next(OFFSETS) if offset is None else offset
    return observe(state, facts(at, n), "acme", "u1", 2, at_offset, now, RULES)


def test_the_actors_own_later_event_closes_the_window_after_the_lateness() -> None:
    state: dict[str, Any] = {}
    for i in range(3):
        assert feed(state, H + timedelta(minutes=10 * i), i) == (Verdict.ACCEPTED, [])
    # the next hour, but within the lateness: still open (an out-of-order event may come)
    assert feed(state, H + timedelta(minutes=64, seconds=59), 3)[1] == []
    verdict, closed = feed(state, H + timedelta(minutes=65), 4)
    assert verdict is Verdict.ACCEPTED
    [window] = closed
    assert (window.tenant_id, window.actor_id, window.start_ms) == ("acme", "u1", millis(H))
    assert window.summary.events == 3
    assert window.end_ms == millis(H) + HOUR
    assert window.evidence[-1].endswith("2")
    assert state["c"] == millis(H)
    assert state["p"] == 2
    assert list(state["o"]) == [str(millis(H) + HOUR)]


def test_an_out_of_order_event_within_the_lateness_still_counts() -> None:
    state: dict[str, Any] = {}
    feed(state, H + timedelta(minutes=50))
    feed(state, H + timedelta(minutes=62), 1)  # next window opens
    assert feed(state, H + timedelta(minutes=59), 2) == (Verdict.ACCEPTED, [])
    closed = close_due(state, millis(H) + HOUR)
    assert [w.summary.events for w in closed] == [2]


def test_events_for_a_closed_window_are_late_and_not_counted() -> None:
    state: dict[str, Any] = {}
    feed(state, H + timedelta(minutes=30))
    assert len(feed(state, H + timedelta(minutes=70), 1)[1]) == 1
    assert feed(state, H + timedelta(minutes=59), 2) == (Verdict.LATE, [])
    # older than the actor's clock allows, even for a window that never opened
    assert feed(state, H - timedelta(hours=3), 3) == (Verdict.LATE, [])
    assert [w.summary.events for w in close_due(state, 2**62)] == [1]


def test_a_redelivered_event_is_counted_once() -> None:
    state: dict[str, Any] = {}
    for offset in (10, 11, 12):
        assert feed(state, H + timedelta(minutes=offset), offset, offset=offset)[0] == "accepted"
    # after a rebalance, Faust delivers again from the last committed offset
    for offset in (11, 12):
        assert feed(state, H + timedelta(minutes=offset), offset, offset=offset)[0] == "repeat"
    assert feed(state, H + timedelta(minutes=13), 13, offset=13)[0] == "accepted"
    [window] = close_due(state, 2**62)
    assert window.summary.events == 4
    # the same offset on another partition (the topic was repartitioned) is not a repeat
    moved = dict(state, p=5)
    assert feed(moved, H + timedelta(minutes=80), offset=12)[0] == "accepted"


def test_events_from_the_future_are_ignored() -> None:
    state: dict[str, Any] = {}
    now = millis(H)
    assert feed(state, H + timedelta(minutes=6), now=now) == (Verdict.FUTURE, [])
    assert state == {}
    assert feed(state, H + timedelta(minutes=4), now=now)[0] is Verdict.ACCEPTED


def test_idle_windows_close_by_watermark_and_state_stays_json() -> None:
    state: dict[str, Any] = {}
    feed(state, H + timedelta(minutes=5))
    feed(state, H + timedelta(minutes=61), 1)
    state = orjson.loads(orjson.dumps(state))  # as restored from the changelog
    assert close_due(state, millis(H) + HOUR - 1) == []
    closed = close_due(state, millis(H) + 2 * HOUR)
    assert [w.start_ms for w in closed] == [millis(H), millis(H) + HOUR]
    assert not has_open(state)
    assert state["c"] == millis(H) + HOUR
    assert feed(state, H + timedelta(minutes=90), 2)[0] is Verdict.LATE


def test_open_windows_per_actor_stay_bounded() -> None:
    state: dict[str, Any] = {}
    for minute in range(0, 24 * 60, 7):
        feed(state, H + timedelta(minutes=minute), minute)
        assert len(state["o"]) <= 2


def test_state_is_forgotten_long_after_its_last_window() -> None:
    state: dict[str, Any] = {}
    feed(state, H)
    assert not forgettable(state, 2**62, RULES)  # still open
    close_due(state, millis(H) + HOUR)
    assert not forgettable(state, millis(H) + HOUR + RULES.forget_after_ms - 1, RULES)
    assert forgettable(state, millis(H) + HOUR + RULES.forget_after_ms, RULES)


class Wall:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_partition_watermark_follows_events_then_the_wall_clock_when_quiet() -> None:
    wall = Wall(millis(H))
    clock = PartitionClock(quiet_ms=60_000, max_future_ms=300_000, wall_ms=wall)
    assert clock.watermark(0) is None
    clock.saw(0, millis(H) - 3 * HOUR)  # a replay of old events: event time, not wall time
    clock.saw(0, millis(H) - 4 * HOUR)
    assert clock.watermark(0) == millis(H) - 3 * HOUR
    clock.saw(1, millis(H) + 10 * HOUR)  # a bad clock: clamped
    assert clock.watermark(1) == millis(H) + 300_000
    wall.ms += 60_000  # nothing delivered for a minute: caught up
    assert clock.watermark(0) == wall.ms
    assert clock.watermark(5) == wall.ms  # never delivered anything since the start
    assert clock.watermark(1) == millis(H) + 300_000


def test_a_quiet_partition_that_is_not_read_to_its_end_keeps_its_event_time() -> None:
    wall = Wall(millis(H))
    clock = PartitionClock(quiet_ms=60_000, max_future_ms=300_000, wall_ms=wall)
    clock.saw(0, millis(H) - 3 * HOUR)
    wall.ms += 120_000  # nothing delivered for two minutes ...
    # ... because the consumer is stalled with events unread: not caught up, no wall clock
    assert clock.watermark(0, caught_up=False) == millis(H) - 3 * HOUR
    assert clock.watermark(0, caught_up=True) == wall.ms


def test_read_to_end_on_a_plain_topic() -> None:
    # offsets 0..41, all messages: position 42 = high watermark = last stable offset
    end = log_end(highwater=42, last_stable=-1)  # read_uncommitted: aiokafka says -1
    assert end == 42
    assert read_to_end(41, position=42, last_fetched=41, log_end=end)
    assert not read_to_end(40, position=42, last_fetched=41, log_end=end)  # 41 unprocessed
    assert not read_to_end(41, position=41, last_fetched=40, log_end=end)  # 41 not fetched
    assert not read_to_end(41, position=42, last_fetched=41, log_end=None)  # end unknown
    assert not read_to_end(41, position=None, last_fetched=41, log_end=end)


def test_read_to_end_on_a_transactional_topic_past_the_final_commit_marker() -> None:
    # batch 1: messages 0..9, commit marker 10; batch 2: messages 11..20, commit marker 21.
    # The high watermark (and the last stable offset) is 22; no one ever receives 10 or 21.
    end = log_end(highwater=22, last_stable=22)
    # aiokafka skipped the final marker: its position is 22, the last record it handed
    # over is 20, and the agent processed 20. The old rule (20 + 1 >= 22) never said so.
    assert read_to_end(20, position=22, last_fetched=20, log_end=end)
    # the same layout with message 20 fetched (buffered in Faust) but not processed yet
    assert not read_to_end(19, position=22, last_fetched=20, log_end=end)
    # a marker in the middle is no gap either
    assert not read_to_end(9, position=22, last_fetched=20, log_end=end)
    # the marker arrives in a later fetch: position 21 is not the end yet
    assert not read_to_end(20, position=21, last_fetched=20, log_end=end)


def test_read_to_end_stops_at_the_last_stable_offset_of_an_open_transaction() -> None:
    # messages 0..9, marker 10, then an open transaction writing 11..15: the high watermark
    # is 16 but a read_committed consumer may read up to the last stable offset 11 only
    end = log_end(highwater=16, last_stable=11)
    assert end == 11
    assert read_to_end(9, position=11, last_fetched=9, log_end=end)
    # once committed (marker 16) the stable offset moves to 17 and 11..15 are to be read
    assert not read_to_end(9, position=11, last_fetched=9, log_end=log_end(17, 17))


def test_read_to_end_with_aborted_records_and_nothing_handed_over() -> None:
    # an aborted transaction 0..4 plus its abort marker 5: nothing is ever delivered
    assert read_to_end(None, position=6, last_fetched=None, log_end=log_end(6, 6))
    # nothing handed over yet but records to read: a stalled or starting consumer
    assert not read_to_end(None, position=0, last_fetched=None, log_end=log_end(6, 6))
    # handed over, nothing processed yet
    assert not read_to_end(None, position=6, last_fetched=3, log_end=log_end(6, 6))
