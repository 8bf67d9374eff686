"""The consumer's record of each fetch (position, last record handed over, log end), which the
anomaly timer reads to decide that a partition is read to its end."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from auditstream.detectors.anomaly.windows import log_end, read_to_end
from auditstream.stream_jobs.faust_transport import Fetched, PositionedConsumer

A, B = TP("audit.events", 0), TP("audit.events", 1)


@dataclass
class State:
    position: int | None
    highwater: int | None = None
    lso: int | None = None
    timestamp: int | None = None

    @property
    def has_valid_position(self) -> bool:
        return self.position is not None


def aiokafka(states: dict[TP, State]) -> Any:
    assignment = SimpleNamespace(state_value=states.get)
    return SimpleNamespace(
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    )


def record(offset: int) -> Any:
    return SimpleNamespace(offset=offset)


def note(holder: Any, states: dict[TP, State], records: dict[TP, list[Any]]) -> None:
    PositionedConsumer.note_fetched(holder, aiokafka(states), set(states), records)


def test_a_fetch_records_position_and_last_record_together() -> None:
    holder = SimpleNamespace(_fetched={})
    # messages 0..9 then a commit marker at 10: aiokafka's position is past the marker
    note(holder, {A: State(11, 11, 11, 5)}, {A: [record(o) for o in range(10)]})
    assert holder._fetched[A] == Fetched(11, 9, 11, 11, 5)
    seen = holder._fetched[A]
    end = log_end(seen.highwater, seen.last_stable)
    assert not read_to_end(8, seen.position, seen.last_record, end)  # 9 fetched, unprocessed
    assert read_to_end(9, seen.position, seen.last_record, end)


def test_a_fetch_without_records_keeps_the_last_record_and_moves_the_position() -> None:
    holder = SimpleNamespace(_fetched={})
    note(holder, {A: State(10, 10, 10, 1)}, {A: [record(9)]})
    # the commit marker came in a fetch of its own: no records, the position moves past it
    note(holder, {A: State(11, 11, 11, 2)}, {})
    assert holder._fetched[A] == Fetched(11, 9, 11, 11, 2)


def test_a_partition_without_a_valid_position_is_not_recorded() -> None:
    holder = SimpleNamespace(_fetched={})
    note(holder, {A: State(None), B: State(0, 0, 0, 1)}, {})
    assert A not in holder._fetched
    assert holder._fetched[B] == Fetched(0, None, 0, 0, 1)
