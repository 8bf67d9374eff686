"""Bounded logging for the worker's libraries while Kafka is away.

In a broker outage aiokafka, Faust and mode log every retry, reconnect and failed request, many
with a traceback: 16 MB in 40 s. :class:`RateLimit` lets one line per condition through every
``interval`` seconds and says how many were held back; a record about an *expected* condition
(the broker unreachable, a request timed out) loses its traceback and keeps a one-line reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

EXPECTED: tuple[type[BaseException], ...] = (ConnectionError, OSError, asyncio.TimeoutError)
"""Conditions of a broker outage, and aiokafka's (added below when it is importable)."""

try:  # aiokafka is the worker's Kafka client; this module does not need it to load
    from aiokafka import errors as _aiokafka_errors  # type: ignore[import-untyped]

    EXPECTED += (
        _aiokafka_errors.KafkaConnectionError,
        _aiokafka_errors.NodeNotReadyError,
        _aiokafka_errors.RequestTimedOutError,
        _aiokafka_errors.KafkaTimeoutError,
        _aiokafka_errors.NotCoordinatorError,
        _aiokafka_errors.CoordinatorNotAvailableError,
        _aiokafka_errors.NotLeaderForPartitionError,
        _aiokafka_errors.LeaderNotAvailableError,
        _aiokafka_errors.UnknownMemberIdError,
        _aiokafka_errors.RebalanceInProgressError,
    )
except ImportError:  # pragma: no cover
    pass


@dataclass
class _Seen:
    passed_at: float
    held: int = 0


class RateLimit(logging.Filter):
    """One record per (logger, level, message template) every ``interval`` seconds.

    Every logger's records: the libraries' retries, and ours (one log statement in a loop,
    such as "Kafka is not reachable", says it once per interval).

    The next record let through after a quiet spell carries the number held back meanwhile.
    ``clock`` is injectable (monotonic seconds). The table of conditions is bounded by the
    number of distinct log statements in the libraries, not by what they log.
    """

    def __init__(
        self,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_conditions: int = 10_000,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.max_conditions = max_conditions
        self._seen: dict[tuple[str, int, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        strip_expected(record)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= self.max_conditions:
                self._seen.clear()
            self._seen[key] = _Seen(now)
            return True
        if now - seen.passed_at < self.interval:
            seen.held += 1
            return False
        if seen.held:
            held = f"{seen.held} more like this in the last {self.interval:.0f} s"
            record.msg = f"{record.msg} [{held}]"
        seen.passed_at, seen.held = now, 0
        return True


def strip_expected(record: logging.LogRecord) -> None:
    """An expected condition is one line: its traceback is replaced by the error's text."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None or not isinstance(exc, EXPECTED):
        return
    record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
    record.args = None
    record.exc_info = None
    record.exc_text = None


def install(handlers: list[logging.Handler], interval: float = 30.0) -> RateLimit:
    """Add one shared :class:`RateLimit` to ``handlers`` (the root logger's)."""
    limit = RateLimit(interval)
    for handler in handlers:
        handler.addFilter(limit)
    return limit
