"""Batch: when to write, and which offsets a write covers."""

from __future__ import annotations

import re

import pytest

from auditstream.sinks.batch import Batch, OffsetRange


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_new_batch_is_empty_and_not_ready() -> None:
    batch = Batch(max_rows=1, max_seconds=0, clock=Clock())
    assert batch.empty
    assert len(batch) == 0
    assert batch.ready() is False
    assert batch.commit_offsets() == []


def test_ready_by_size() -> None:
    batch = Batch(max_rows=3, max_seconds=60, clock=Clock())
    for offset in range(2):
        batch.add((offset,), "t", 0, offset)
        assert batch.ready() is False
    batch.add((2,), "t", 0, 2)
    assert batch.ready() is True
    assert len(batch) == 3


def test_ready_by_age_from_the_first_message() -> None:
    clock = Clock()
    batch = Batch(max_rows=100, max_seconds=2.0, clock=clock)
    clock.t = 5.0
    batch.add(("a",), "t", 0, 0)
    assert batch.started == 5.0
    clock.t = 6.5
    batch.add(("b",), "t", 0, 1)
    assert batch.started == 5.0  # later messages do not restart the timer
    clock.t = 6.999
    assert batch.ready() is False
    clock.t = 7.0
    assert batch.ready() is True


def test_empty_batch_is_never_ready_however_old() -> None:
    clock = Clock()
    batch = Batch(max_rows=1, max_seconds=1, clock=clock)
    clock.t += 1000
    assert batch.ready() is False
    assert batch.started is None


def test_offset_ranges_per_partition() -> None:
    batch = Batch(max_rows=100, max_seconds=1, clock=Clock())
    for topic, partition, offset in [
        ("a", 0, 10),
        ("a", 1, 3),
        ("a", 0, 12),
        ("a", 0, 11),
        ("b", 0, 7),
        ("a", 1, 2),
    ]:
        batch.add((offset,), topic, partition, offset)
    assert batch.ranges == {
        ("a", 0): OffsetRange("a", 0, 10, 12),
        ("a", 1): OffsetRange("a", 1, 2, 3),
        ("b", 0): OffsetRange("b", 0, 7, 7),
    }
    assert sorted(batch.commit_offsets()) == [("a", 0, 13), ("a", 1, 4), ("b", 0, 8)]


def test_rows_kept_in_arrival_order() -> None:
    batch = Batch(max_rows=100, max_seconds=1, clock=Clock())
    batch.add(("x",), "t", 0, 5)
    batch.add(("y",), "t", 1, 1)
    assert batch.rows == [("x",), ("y",)]


def test_cover_counts_offsets_without_rows() -> None:
    clock = Clock()
    batch = Batch(max_rows=1, max_seconds=3, clock=clock)
    batch.cover("t", 2, 41)  # dead-lettered message
    assert not batch.empty
    assert len(batch) == 0
    assert batch.rows == []
    assert batch.ready() is False  # no rows, not old yet
    clock.t += 3
    assert batch.ready() is True  # its offset must still be committed
    assert batch.commit_offsets() == [("t", 2, 42)]


def test_cover_extends_a_range_with_rows() -> None:
    batch = Batch(max_rows=10, max_seconds=1, clock=Clock())
    batch.add(("r",), "t", 0, 5)
    batch.cover("t", 0, 6)
    batch.add(("r",), "t", 0, 7)
    assert batch.ranges[("t", 0)] == OffsetRange("t", 0, 5, 7)
    assert batch.commit_offsets() == [("t", 0, 8)]


def _batch(messages: list[tuple[str, int, int]]) -> Batch:
    batch = Batch(max_rows=100, max_seconds=1, clock=Clock())
    for topic, partition, offset in messages:
        batch.add((offset,), topic, partition, offset)
    return batch


def test_token_shape() -> None:
    assert re.fullmatch(r"auditstream:[0-9a-f]{32}", _batch([("t", 0, 1)]).token())


def test_token_is_stable_for_the_same_offsets() -> None:
    messages = [("a", 0, 1), ("a", 0, 2), ("a", 10, 5), ("b", 2, 9)]
    first = _batch(messages)
    again = _batch(list(reversed(messages)))  # other arrival order, same coverage
    assert first.token() == again.token()
    assert first.token() == first.token()


def test_token_ignores_rows_but_not_covered_offsets() -> None:
    with_rows = _batch([("a", 0, 1), ("a", 0, 2)])
    covered = Batch(max_rows=100, max_seconds=1, clock=Clock())
    covered.add((1,), "a", 0, 1)
    covered.cover("a", 0, 2)
    assert with_rows.token() == covered.token()


@pytest.mark.parametrize(
    "other",
    [
        [("a", 0, 1), ("a", 0, 3)],  # different last offset
        [("a", 0, 0), ("a", 0, 2)],  # different first offset
        [("a", 1, 1), ("a", 1, 2)],  # different partition
        [("b", 0, 1), ("b", 0, 2)],  # different topic
        [("a", 0, 1), ("a", 0, 2), ("a", 1, 0)],  # one more partition
    ],
)
def test_token_differs_for_different_offsets(other: list[tuple[str, int, int]]) -> None:
    assert _batch([("a", 0, 1), ("a", 0, 2)]).token() != _batch(other).token()


def test_token_sorts_partitions_numerically() -> None:
    # 2 and 10 in either order give one token; the sort must not depend on insertion
    one = _batch([("a", 2, 0), ("a", 10, 0)])
    two = _batch([("a", 10, 0), ("a", 2, 0)])
    assert one.token() == two.token()


def test_default_clock_is_usable() -> None:
    batch = Batch(max_rows=1, max_seconds=60)
    batch.add(("r",), "t", 0, 0)
    assert batch.ready() is True
