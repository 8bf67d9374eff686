"""UUIDv7 event ids: version 7, time embedded, strictly increasing within a process."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest

from auditstream.schemas import ids
from auditstream.schemas.ids import uuid7, uuid7_time_ms


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate the module's clock state: tests here may move it far into the future."""
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)


def test_version_and_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert str(value)[14] == "7"


def test_time_is_embedded() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(value) <= after


@pytest.mark.usefixtures("fresh_state")
def test_explicit_time_is_embedded() -> None:
    now_ms = 1_900_000_000_123
    value = uuid7(now_ms)
    assert uuid7_time_ms(value) == now_ms
    assert value.version == 7


def test_monotonic_within_a_process() -> None:
    values = [uuid7() for _ in range(20_000)]
    assert len(set(values)) == len(values)
    assert all(a.int < b.int for a, b in itertools.pairwise(values))
    # the text form sorts the same way: what ClickHouse and humans see
    texts = [str(v) for v in values]
    assert texts == sorted(texts)


@pytest.mark.usefixtures("fresh_state")
def test_monotonic_within_one_millisecond() -> None:
    now_ms = 1_900_000_000_000
    values = [uuid7(now_ms) for _ in range(1000)]
    assert all(a.int < b.int for a, b in itertools.pairwise(values))
    assert {uuid7_time_ms(v) for v in values} == {now_ms}


@pytest.mark.usefixtures("fresh_state")
def test_clock_going_back_keeps_order() -> None:
    first = uuid7(1_900_000_000_500)
    second = uuid7(1_900_000_000_100)
    assert second.int > first.int
    assert uuid7_time_ms(second) == 1_900_000_000_500


@pytest.mark.usefixtures("fresh_state")
def test_counter_exhaustion_borrows_the_next_millisecond() -> None:
    now_ms = 1_900_000_000_000
    values = [uuid7(now_ms) for _ in range(0x1000 + 10)]
    assert all(a.int < b.int for a, b in itertools.pairwise(values))
    assert uuid7_time_ms(values[-1]) == now_ms + 1
    assert all(v.version == 7 for v in values)


def test_monotonic_across_threads() -> None:
    out: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def make(bucket: list[uuid.UUID]) -> None:
        bucket.extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=make, args=(b,)) for b in out]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [v for bucket in out for v in bucket]
    assert len(set(every)) == len(every)
    for bucket in out:
        assert bucket == sorted(bucket, key=lambda v: v.int)
