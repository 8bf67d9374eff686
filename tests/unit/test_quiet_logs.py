"""The worker's log stays small while Kafka is away: one line per condition per interval."""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaConnectionError

from auditstream.stream_jobs.quiet_logs import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(
    name: str, msg: str, *args: object, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


def test_one_line_per_condition_per_interval_with_a_count_of_the_rest() -> None:
    clock = Clock()
    limit = RateLimit(interval=30.0, clock=clock)
    passed = []
    for second in range(90):
        clock.now = float(second)
        for _ in range(100):  # a retry loop: 100 lines a second
            r = record("aiokafka.conn", "Unable connect to %r: %s", "node 1", "refused")
            if limit.filter(r):
                passed.append(r.getMessage())
    assert len(passed) == 3  # at 0 s, 30 s and 60 s
    assert passed[0] == "Unable connect to 'node 1': refused"
    assert passed[1].endswith("[2999 more like this in the last 30 s]")


def test_conditions_are_counted_apart() -> None:
    clock = Clock()
    limit = RateLimit(interval=30.0, clock=clock)
    assert limit.filter(record("aiokafka", "Unable connect to %r", "a"))
    assert limit.filter(record("aiokafka", "Marking the coordinator dead"))
    assert limit.filter(record("faust.transport", "Unable connect to %r", "a"))
    assert not limit.filter(record("aiokafka", "Unable connect to %r", "b"))


def test_an_expected_condition_has_no_traceback() -> None:
    limit = RateLimit(clock=Clock())
    r = record("faust.transport.consumer", "Commit failed", exc=KafkaConnectionError("down"))
    assert limit.filter(r)
    assert r.exc_info is None
    assert r.getMessage() == "Commit failed (KafkaConnectionError: KafkaConnectionError: down)"


def test_an_unexpected_error_keeps_its_traceback() -> None:
    limit = RateLimit(clock=Clock())
    r = record("faust.agents", "Agent crashed", exc=ValueError("bug"))
    assert limit.filter(r)
    assert r.exc_info is not None
