"""One log line per condition per interval, however often the condition recurs.

A broker restart makes every client report the same failure many times a second; a log
that says it once every ~30 s, with how many repeats it left out, stays readable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, condition: str) -> int | None:
        """None if ``condition`` was logged within the interval (counted as suppressed);
        else how many times it was suppressed since it was last logged."""
        now = self._clock()
        last = self._last.get(condition)
        if last is not None and now - last < self._interval:
            self._suppressed[condition] = self._suppressed.get(condition, 0) + 1
            return None
        self._last[condition] = now
        return self._suppressed.pop(condition, 0)

    def log(self, level: int, condition: str, message: str) -> bool:
        """Log ``message`` unless ``condition`` was logged within the interval."""
        suppressed = self.allow(condition)
        if suppressed is None:
            return False
        if suppressed:
            message += f" ({suppressed} more like it since the last report)"
        self._log.log(level, "%s", message)
        return True

    def warning(self, condition: str, message: str) -> bool:
        return self.log(logging.WARNING, condition, message)

    def error(self, condition: str, message: str) -> bool:
        return self.log(logging.ERROR, condition, message)


class RateLimitFilter(logging.Filter):
    """A ``logging.Filter`` for librdkafka's own log lines (confluent-kafka's ``logger``
    setting logs ``"%s [%s] %s" % (facility, client, text)``): one per facility per interval."""

    def __init__(self, limiter: RateLimitedLog) -> None:
        super().__init__()
        self._limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        condition = f"rdkafka:{args[0]}" if args else f"rdkafka:{record.msg}"
        return self._limiter.allow(condition) is not None
