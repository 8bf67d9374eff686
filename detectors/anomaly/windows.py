"""One actor's open windows, as the JSON state the stream agent keeps per tenant + actor.

Windows are closed by **event time**, never by the order things happen to be processed in:

- by the actor's own events: the partition keeps one actor's events in order, so once the
  actor's latest event is ``lateness`` past a window's end, that window is complete
  (``observe``). This is exact and deterministic: a replay closes the same windows;
- for actors that went quiet (an attacker's burst followed by silence is the case that
  matters), by a watermark the agent keeps per partition (``close_due``): the latest event
  time seen on the partition, or the wall clock when the partition has had nothing to
  deliver for a while. A window closes when that watermark is ``idle margin`` past its end.

An event for a window that is already closed, or that the actor's own clock has left
``lateness`` behind, is *late*: it is not counted (the window was scored without it). An event
stamped more than ``max_future`` ahead of the wall clock is ignored, so one bad clock cannot
jump an actor's windows into the future. An event delivered again (Kafka is at-least-once,
and Faust re-delivers uncommitted events after a rebalance or a crash) is a *repeat*: the
state records the offset of the last event it counted (one actor's events all come from one
partition, in offset order), so each event is counted once even though it may be delivered
twice. State per actor stays small: at most two open windows (with ``lateness`` under an
hour) of bounded size (see ``features.new_window``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from auditstream.detectors.anomaly.features import (
    WINDOW_MS,
    EventFacts,
    WindowSummary,
    add,
    new_window,
    summary_of,
    window_start,
)


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    LATE = "late"
    FUTURE = "future"
    REPEAT = "repeat"


@dataclass(frozen=True)
class ClosedWindow:
    tenant_id: str
    actor_id: str
    start_ms: int
    summary: WindowSummary
    first_ms: int
    last_ms: int
    evidence: tuple[str, ...] = ()

    @property
    def end_ms(self) -> int:
        return self.start_ms + WINDOW_MS


@dataclass(frozen=True)
class WindowRules:
    lateness_ms: int = 5 * 60_000
    """How far past a window's end the actor's own events must be before it closes."""
    idle_margin_ms: int = 15 * 60_000
    """How far past a window's end the partition watermark must be to close it."""
    max_future_ms: int = 5 * 60_000
    """Events stamped further ahead of the wall clock are ignored."""
    forget_after_ms: int = 6 * 3_600_000
    """State of an actor with no open window is dropped this long after its last window."""


def observe(
    state: dict[str, Any],
    facts: EventFacts,
    tenant_id: str,
    actor_id: str,
    partition: int,
    offset: int,
    now_ms: int,
    rules: WindowRules,
) -> tuple[Verdict, list[ClosedWindow]]:
    """Fold one event (at ``offset`` of ``partition``) into ``state`` (in place); returns the
    windows it closed."""
    counted: int | None = state.get("x")
    if counted is not None and state.get("p") == partition and offset <= counted:
        return Verdict.REPEAT, []
    if facts.occurred_ms > now_ms + rules.max_future_ms:
        return Verdict.FUTURE, []
    start = window_start(facts.occurred_ms)
    closed_through: int | None = state.get("c")
    high: int | None = state.get("m")
    if closed_through is not None and start <= closed_through:
        return Verdict.LATE, []
    if high is not None and start + WINDOW_MS + rules.lateness_ms <= high:
        return Verdict.LATE, []
    state["p"], state["t"], state["a"], state["x"] = partition, tenant_id, actor_id, offset
    windows: dict[str, Any] = state.setdefault("o", {})
    add(windows.setdefault(str(start), new_window()), facts)
    state["m"] = facts.occurred_ms if high is None else max(high, facts.occurred_ms)
    return Verdict.ACCEPTED, close_due(state, state["m"] - rules.lateness_ms)


def close_due(state: dict[str, Any], watermark_ms: int) -> list[ClosedWindow]:
    """Close (remove from ``state``) every open window that ends at or before the watermark."""
    windows: dict[str, Any] = state.get("o") or {}
    closed = []
    for key in sorted(windows, key=int):
        start = int(key)
        if start + WINDOW_MS > watermark_ms:
            break
        window = windows.pop(key)
        closed.append(
            ClosedWindow(
                tenant_id=state["t"],
                actor_id=state["a"],
                start_ms=start,
                summary=summary_of(window),
                first_ms=int(window["f"]),
                last_ms=int(window["l"]),
                evidence=tuple(window["e"]),
            )
        )
        state["c"] = max(state.get("c") or start, start)
    return closed


def has_open(state: dict[str, Any]) -> bool:
    return bool(state.get("o"))


def forgettable(state: dict[str, Any], watermark_ms: int, rules: WindowRules) -> bool:
    """No open window, and the last one closed long enough ago that nothing late will come."""
    closed_through = state.get("c")
    if has_open(state) or closed_through is None:
        return False
    return int(closed_through) + WINDOW_MS + rules.forget_after_ms <= watermark_ms


class PartitionClock:
    """The event-time watermark of each partition, for closing quiet actors' windows.

    It is the latest event time seen on the partition (clamped to the wall clock plus
    ``max_future``), so it advances with the data: correct under consumer lag and for
    replays of old events. A partition that has delivered nothing for ``quiet_ms`` of wall
    time is caught up (nothing of it is waiting to be read), so its watermark is then the wall
    clock: windows of a burst followed by silence still close. Quiet is not enough on its own:
    a consumer stalled by a rebalance or a slow recovery delivers nothing either while events
    wait unread, so the caller also says whether the partition is read to its end
    (``caught_up``, see ``read_to_end``). In memory only: after a restart it starts again from
    the events and the wall clock.
    """

    def __init__(self, quiet_ms: int, max_future_ms: int, wall_ms: Callable[[], int]) -> None:
        self._quiet_ms = quiet_ms
        self._max_future_ms = max_future_ms
        self._wall_ms = wall_ms
        self._started = wall_ms()
        self._max: dict[int, int] = {}
        self._last_delivery: dict[int, int] = {}

    def saw(self, partition: int, occurred_ms: int) -> None:
        now = self._wall_ms()
        seen = min(occurred_ms, now + self._max_future_ms)
        self._max[partition] = max(self._max.get(partition, seen), seen)
        self._last_delivery[partition] = now

    def watermark(self, partition: int, caught_up: bool = True) -> int | None:
        now = self._wall_ms()
        high = self._max.get(partition)
        quiet = now - self._last_delivery.get(partition, self._started) >= self._quiet_ms
        if quiet and caught_up:
            return now if high is None else max(high, now)
        return high


def read_to_end(
    last_processed: int | None,
    position: int | None,
    last_fetched: int | None,
    log_end: int | None,
) -> bool:
    """Whether a partition is read to its end, from one consistent view of its consumer.

    ``position`` is the consumer's fetch position (the next offset it will read), ``log_end``
    the end of what it may read (the last stable offset under ``read_committed``, else the
    high watermark), ``last_fetched`` the offset of the last record the consumer handed over
    (None: none since the assignment) and ``last_processed`` the offset of the last record
    the agent processed (None: none).

    Offsets alone cannot say it: a transactional topic has control records (a commit marker
    after each batch, abort markers, aborted records) that take offsets and are never
    delivered, so "last processed + 1 = end" never holds there, while "position = end" also
    holds when records are fetched but still buffered, unprocessed. Read to the end is both:
    the consumer has read everything it may (``position >= log_end``), and every record it
    handed over has been processed (``last_processed >= last_fetched``). An unknown position
    or end (not fetched yet since the assignment: a stalled or recovering consumer) is not
    read to the end.
    """
    if position is None or log_end is None or position < log_end:
        return False
    if last_fetched is None:
        return True  # nothing handed over, and nothing left to read
    return last_processed is not None and last_processed >= last_fetched


def log_end(highwater: int | None, last_stable: int | None) -> int | None:
    """The end of what a consumer may read: the last stable offset when the broker gave one
    (``read_committed``; aiokafka says -1 under ``read_uncommitted``), else the high
    watermark."""
    if last_stable is not None and last_stable >= 0:
        return last_stable
    return highwater
