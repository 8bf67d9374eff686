"""Emission: a plan's events through the SDK at a controlled rate, labels written as they close.

``Pacer`` keeps the average rate (it sleeps only when ahead by more than ``min_sleep``, and
never bursts to catch up more than ``max_behind`` seconds); the clock and sleep are
injectable, so tests run it without waiting. A scenario's label is written when the last
of its events has been accepted, with the wall-clock moment each of them was: stopping a
run early (Ctrl-C, ``stop``) leaves no label for a scenario only half sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditstream.simulation.events import SimEvent
from auditstream.simulation.labels import Label


class Pacer:
    """Spaces calls to ``wait()`` ``1/rate`` seconds apart on average (rate 0: no limit)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        min_sleep: float = 0.002,
        max_behind: float = 1.0,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be 0 (unlimited) or positive events per second")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._min_sleep = min_sleep
        self._max_behind = max_behind
        self._start: float | None = None
        self._sent = 0

    def wait(self) -> None:
        """Return when the next event is due."""
        if self.rate == 0:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self._start + self._sent / self.rate
        ahead = due - now
        if ahead >= self._min_sleep:
            self._sleep(ahead)
        elif -ahead > self._max_behind:
            # Far behind (a stall): restart the schedule here instead of bursting.
            self._start = now - self._sent / self.rate - self._max_behind
        self._sent += 1


class Split:
    """An event-time-ordered stream cut at ``moment``: iterate ``before()``, then ``after()``."""

    def __init__(self, events: Iterable[SimEvent], moment: datetime) -> None:
        self._events = iter(events)
        self._moment = moment
        self._held: SimEvent | None = None

    def before(self) -> Iterator[SimEvent]:
        for event in self._events:
            if event.at >= self._moment:
                self._held = event
                return
            yield event

    def after(self) -> Iterator[SimEvent]:
        if self._held is not None:
            yield self._held
            self._held = None
        yield from self._events


@dataclass
class RunResult:
    events: int = 0
    seconds: float = 0.0
    labels: list[Label] = field(default_factory=list)
    """Labels of every scenario sent in full, with emission times."""
    incomplete: int = 0
    """Scenarios started but not finished (the run stopped early)."""
    stopped: bool = False

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def run(
    events: Iterable[SimEvent],
    emit: Callable[..., Any],
    labels: dict[str, Label],
    pacer: Pacer,
    *,
    on_label: Callable[[Label], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 200,
    stop: Callable[[], bool] | None = None,
    wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Emit ``events`` in order through ``emit(**fields)``; returns what was sent.

    ``stop`` is polled every ``progress_every`` events; KeyboardInterrupt also stops cleanly.
    """
    result = RunResult()
    pending: dict[str, dict[str, int]] = {}
    sizes = {sid: len(label.event_ids) for sid, label in labels.items()}
    began = clock()
    try:
        for event in events:
            pacer.wait()
            emit(**event.fields)
            result.events += 1
            sid = event.scenario
            if sid is not None and sid in labels:
                sent = pending.setdefault(sid, {})
                sent[event.event_id] = wall_ms()
                if len(sent) == sizes[sid]:
                    label = labels[sid].with_emitted(pending.pop(sid))
                    result.labels.append(label)
                    if on_label is not None:
                        on_label(label)
            if result.events % progress_every == 0:
                if on_progress is not None:
                    on_progress(result.events)
                if stop is not None and stop():
                    result.stopped = True
                    break
    except KeyboardInterrupt:
        result.stopped = True
    result.seconds = clock() - began
    result.incomplete = len(pending)
    if on_progress is not None:
        on_progress(result.events)
    return result
