"""RecentIds: a window in time and a cap in count."""

from __future__ import annotations

import uuid

from auditstream.stream_jobs.dedup import RecentIds

T = "acme"


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def test_first_sight_is_new_second_is_seen() -> None:
    recent = RecentIds(10, 100, Clock())
    a, b = uuid.uuid4(), uuid.uuid4()
    assert recent.seen_before(T, a) is False
    assert recent.seen_before(T, a) is True
    assert recent.seen_before(T, b) is False
    assert len(recent) == 2


def test_identity_is_tenant_and_event_id() -> None:
    """Another tenant's event with the same id is another event, not a repeat (issue 9/10)."""
    recent = RecentIds(10, 100, Clock())
    shared = uuid.uuid4()
    assert recent.seen_before("evil", shared) is False
    assert recent.seen_before("acme", shared) is False
    assert recent.seen_before("acme", shared) is True
    assert recent.seen_before("evil", shared) is True
    assert len(recent) == 2


def test_window_expiry() -> None:
    clock = Clock()
    recent = RecentIds(10, 100, clock)
    a = uuid.uuid4()
    recent.seen_before(T, a)
    clock.t += 10  # exactly at the edge: still remembered
    assert recent.seen_before(T, a) is True
    clock.t += 0.001
    assert recent.seen_before(T, a) is False  # forgotten, and remembered again from now
    clock.t += 5
    assert recent.seen_before(T, a) is True


def test_repeat_does_not_extend_the_window() -> None:
    clock = Clock()
    recent = RecentIds(10, 100, clock)
    a = uuid.uuid4()
    recent.seen_before(T, a)
    clock.t += 9
    assert recent.seen_before(T, a) is True
    clock.t += 2  # 11 s after the first sight
    assert recent.seen_before(T, a) is False


def test_expiry_forgets_only_the_old() -> None:
    clock = Clock()
    recent = RecentIds(10, 100, clock)
    old, new = uuid.uuid4(), uuid.uuid4()
    recent.seen_before(T, old)
    clock.t += 6
    recent.seen_before(T, new)
    clock.t += 6
    other = uuid.uuid4()
    assert recent.seen_before(T, other) is False
    assert len(recent) == 2  # old expired, new and other kept
    assert recent.seen_before(T, new) is True
    assert recent.seen_before(T, old) is False


def test_max_size_evicts_oldest_first() -> None:
    recent = RecentIds(1000, 3, Clock())
    ids = [uuid.uuid4() for _ in range(4)]
    for value in ids:
        assert recent.seen_before(T, value) is False
    assert len(recent) == 3
    for value in ids[1:]:
        assert recent.seen_before(T, value) is True
    assert recent.seen_before(T, ids[0]) is False  # evicted, so new again
    assert len(recent) == 3


def test_size_never_exceeds_max() -> None:
    recent = RecentIds(1000, 50, Clock())
    for _ in range(500):
        recent.seen_before(T, uuid.uuid4())
        assert len(recent) <= 50
    assert len(recent) == 50


def test_default_clock_works() -> None:
    recent = RecentIds(60, 10)
    a = uuid.uuid4()
    assert recent.seen_before(T, a) is False
    assert recent.seen_before(T, a) is True
