"""Detector state written back once per commit, not per batch (``detect.WriteBack``)."""

from __future__ import annotations

from typing import Any

from auditstream.stream_jobs.detect import WriteBack


class FakeTable:
    """What ``WriteBack`` uses of a Faust table: its store and ``send_changelog``."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[int, str, dict[str, Any]]] = []

    def send_changelog(self, partition: int, key: str, value: dict[str, Any]) -> None:
        self.sent.append((partition, key, dict(value)))


def test_a_key_changed_in_many_batches_is_written_once_with_its_latest_value() -> None:
    table, changed = FakeTable(), WriteBack()
    for n in range(5):  # five batches, each changing the same key
        state = changed.get(table, "k")
        state["n"] = n
        changed.mark(table, "k", 3, state)
        changed.batch_done()
    assert table.sent == []
    changed.flush()
    assert table.sent == [(3, "k", {"n": 4})]
    assert changed.flushed_keys == 1
    changed.flush()  # nothing changed since: nothing written
    assert len(table.sent) == 1


def test_a_new_key_is_in_memory_at_once_and_read_back_by_the_next_event() -> None:
    table, changed = FakeTable(), WriteBack()
    first = changed.get(table, "new")
    first["seen"] = 1
    assert table.data["new"] is first
    changed.flush()  # not marked: no changelog message
    assert table.sent == []
    assert changed.get(table, "new") == {"seen": 1}


def test_a_value_dropped_from_memory_before_the_commit_is_still_written() -> None:
    """A revocation can clear the table's partitions before the commit that flushes."""
    table, changed = FakeTable(), WriteBack()
    state = changed.get(table, "k")
    state["n"] = 1
    changed.mark(table, "k", 0, state)
    table.data.clear()
    changed.flush()
    assert table.sent == [(0, "k", {"n": 1})]


def test_each_table_keeps_its_own_keys() -> None:
    actor, ip, changed = FakeTable(), FakeTable(), WriteBack()
    changed.mark(actor, "k", 1, changed.get(actor, "k"))
    changed.mark(ip, "k", 2, changed.get(ip, "k"))
    changed.flush()
    assert actor.sent == [(1, "k", {})]
    assert ip.sent == [(2, "k", {})]


def test_without_a_commit_hook_it_writes_per_batch() -> None:
    table, changed = FakeTable(), WriteBack()
    changed.per_batch = True
    changed.mark(table, "k", 0, changed.get(table, "k"))
    changed.batch_done()
    assert table.sent == [(0, "k", {})]


def test_a_batch_that_raised_alerts_writes_its_state_before_they_are_published() -> None:
    table, changed = FakeTable(), WriteBack()
    changed.mark(table, "k", 0, changed.get(table, "k"))
    changed.batch_done(alerted=True)
    assert table.sent == [(0, "k", {})]
