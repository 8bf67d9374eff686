"""Logging that stays readable through an outage: one line per condition per interval.

A broker restart or an unreachable store repeats the same failure many times a second.
:class:`RateLimitedLog` (for the lines we write) lets the first occurrence of a condition
through, then at most one line per ``every`` seconds saying how many more there were. The
filters do the same for lines we do not write: :class:`LibraryLogFilter` for libraries'
retry warnings, :class:`RdkafkaLogFilter` for librdkafka's own log lines. (The Faust worker's
libraries have theirs in ``stream_jobs.quiet_logs``, which also strips expected tracebacks.)
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
    """Thread-safe; ``clock`` is injectable (monotonic seconds)."""

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

    def allow(self, condition: str) -> int | None:
        """None if ``condition`` was let through within ``every`` seconds (then it is counted);
        else how many times it was held back since it was last let through."""
        now = self._clock()
        with self._lock:
            state = self._conditions.get(condition)
            if state is not None and now - state.logged_at < self._every:
                state.suppressed += 1
                return None
            self._conditions[condition] = _Condition(now)
        return 0 if state is None else state.suppressed

    def log(self, level: int, condition: str, message: str, *args: object) -> bool:
        """Log ``message`` (``%`` formatted with ``args``) unless ``condition`` was logged
        within ``every`` seconds. True if a line was written."""
        suppressed = self.allow(condition)
        if suppressed is None:
            return False
        if suppressed:
            message = message.replace("%", "%%") if not args else message
            message += " (%d more like this in the last %.0f s)"
            args = (*args, suppressed, self._every)
        self._logger.log(level, message, *args)
        return True

    def warning(self, condition: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, condition, message, *args)

    def error(self, condition: str, message: str, *args: object) -> bool:
        return self.log(logging.ERROR, condition, message, *args)

    def resolved(self, condition: str, message: str, *args: object) -> None:
        """The condition ended: say so (once) if it was ever logged."""
        with self._lock:
            state = self._conditions.pop(condition, None)
        if state is not None:
            self._logger.info(message, *args)


class LibraryLogFilter(logging.Filter):
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


class RdkafkaLogFilter(logging.Filter):
    """For the logger given to confluent-kafka's ``logger`` setting (which logs
    ``"%s [%s] %s" % (facility, client, text)``): one line per facility per interval,
    counted in ``limiter``."""

    def __init__(self, limiter: RateLimitedLog) -> None:
        super().__init__()
        self._limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        condition = f"rdkafka:{args[0]}" if args else f"rdkafka:{record.msg}"
        return self._limiter.allow(condition) is not None
