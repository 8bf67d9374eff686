"""Emission: the pacer keeps the rate with an injected clock; labels are written only for
scenarios sent in full, with the moment each event was accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditstream.simulation import runner
from auditstream.simulation.events import SimEvent
from auditstream.simulation.labels import Kind, Label, LabelWriter, read_labels

T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_events_at_the_rate() -> None:
    clock = FakeClock()
    pacer = runner.Pacer(200, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        pacer.wait()
        clock.now += 0.0001  # the emit itself
    assert 1000 / 200 - 0.01 <= clock.now - 100.0 <= 1000 / 200 + 0.2
    assert all(s >= 0.002 for s in clock.slept)  # no sub-millisecond sleeps


def test_pacer_without_a_limit_never_sleeps() -> None:
    clock = FakeClock()
    pacer = runner.Pacer(0, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        pacer.wait()
    assert clock.slept == []


def test_pacer_does_not_burst_after_a_stall() -> None:
    clock = FakeClock()
    pacer = runner.Pacer(100, clock=clock, sleep=clock.sleep, max_behind=1.0)
    for _ in range(10):
        pacer.wait()
    clock.now += 30.0  # stalled for 30 s
    clock.slept.clear()
    caught_up = 0
    while not clock.slept:
        pacer.wait()
        caught_up += 1
    assert 90 <= caught_up <= 102  # about max_behind x rate at once, not 30 s worth


def test_pacer_refuses_a_negative_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        runner.Pacer(-1)


def _event(n: int, scenario: str | None = None) -> SimEvent:
    return SimEvent(
        T0 + timedelta(seconds=n),
        {"event_id": f"e{n}", "occurred_at": T0 + timedelta(seconds=n)},
        scenario,
    )


def _label(sid: str, ids: list[str]) -> Label:
    return Label(
        sid, "brute_force", Kind.ATTACK, "acme", "u1", "actor", T0, T0, event_ids=tuple(ids)
    )


def test_labels_are_written_when_their_last_event_is_sent(tmp_path: Path) -> None:
    events = [_event(0), _event(1, "a"), _event(2), _event(3, "a"), _event(4, "b"), _event(5, "b")]
    labels = {"a": _label("a", ["e1", "e3"]), "b": _label("b", ["e4", "e5", "e9"])}
    sent: list[dict[str, Any]] = []
    ticks = iter(range(1000, 2000))
    path = tmp_path / "labels.jsonl"
    with LabelWriter(path) as out:
        result = runner.run(
            events,
            lambda **fields: sent.append(fields),
            labels,
            runner.Pacer(0),
            on_label=out.write,
            wall_ms=lambda: next(ticks),
        )
    assert [f["event_id"] for f in sent] == [f"e{n}" for n in range(6)]
    assert result.events == 6
    assert result.incomplete == 1
    written = read_labels(path)
    assert [lb.id for lb in written] == ["a"]
    assert written[0].emitted_ms == {"e1": 1000, "e3": 1001}


def test_stop_ends_the_run_early() -> None:
    events = (_event(n) for n in range(10_000))
    result = runner.run(
        events, lambda **_: None, {}, runner.Pacer(0), progress_every=100, stop=lambda: True
    )
    assert result.stopped
    assert result.events == 100


def test_split_cuts_an_ordered_stream_at_a_moment() -> None:
    split = runner.Split((_event(n) for n in range(10)), T0 + timedelta(seconds=4))
    assert [e.event_id for e in split.before()] == ["e0", "e1", "e2", "e3"]
    assert [e.event_id for e in split.after()] == [f"e{n}" for n in range(4, 10)]


def test_a_broken_label_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="label line 1"):
        read_labels(path)
