"""Logging that stays readable through an outage: one line per condition per interval.

A broker restart or an unreachable store repeats the same failure many times a second;
``RateLimitedLog`` writes the first occurrence of a condition, then at most one line per
``every`` seconds saying how many more there were.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Condition:
    logged_at: float
    suppressed: int = 0


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._conditions: dict[str, _Condition] = {}
        self._lock = threading.Lock()

    def log(self, level: int, condition: str, message: str, *args: object) -> bool:
        """Log ``message`` unless ``condition`` was logged within ``every`` seconds (then
        count it). True if a line was written."""
        now = self._clock()
        with self._lock:
            state = self._conditions.get(condition)
            if state is not None and now - state.logged_at < self._every:
                state.suppressed += 1
                return False
            suppressed = 0 if state is None else state.suppressed
            self._conditions[condition] = _Condition(now)
        if suppressed:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, suppressed, self._every)
        self._logger.log(level, message, *args)
        return True

    def warning(self, condition: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, condition, message, *args)

    def resolved(self, condition: str, message: str, *args: object) -> None:
        """The condition ended: say so (once) if it was ever logged."""
        with self._lock:
            state = self._conditions.pop(condition, None)
        if state is not None:
            self._logger.info(message, *args)


class RateLimitFilter(logging.Filter):
    """For log lines we do not write ourselves (librdkafka's, urllib3's, clickhouse-connect's
    retry warnings): one record per (logger, level, kind) per ``every`` seconds. The kind is
    librdkafka's facility (its first argument) for ``kafka_logger``, else the message's
    template. Records of ``auditstream`` loggers other than ``kafka_logger`` pass untouched
    (they are rate-limited where they are written, if they repeat)."""

    def __init__(
        self,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        kafka_logger: str = "auditstream.sinks.kafka",
    ):
        super().__init__()
        self._every = every
        self._clock = clock
        self._kafka = kafka_logger
        self._seen: dict[tuple[str, int, str], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == self._kafka:
            args = record.args if isinstance(record.args, tuple) else ()
            kind = str(args[0]) if args else str(record.msg)[:60]
        elif record.name.startswith("auditstream") or record.levelno < logging.WARNING:
            return True
        else:
            kind = str(record.msg)[:60]
        key = (record.name, record.levelno, kind)
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self._every:
                return False
            self._seen[key] = now
        return True
