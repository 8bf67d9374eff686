"""Which rows a table can keep: inside its retention, and within what its TTL can compute.

A row whose ``TTL toDateTime(t) + INTERVAL N DAY`` is already past would be deleted by the
next merge: storing it only hides its loss, so the sink dead-letters it instead
(``outside_retention``). ``DateTime`` (seconds since 1970 in a UInt32) ends at
2106-02-07 06:28:15 UTC, and TTL arithmetic past it wraps to 1970, so a row whose TTL
falls past that end would be deleted at once too (``in_future``); before 1970 ``toDateTime``
cannot say either (``outside_retention``).

The retention is read from the table itself (``system.tables.engine_full``), at start and
again every ``refresh_seconds``, so a retention changed while the sink runs
(``auditstream retention set``) takes effect here too.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from auditstream.schemas.limits import DATETIME_END, DATETIME_START

Verdict = Literal["outside_retention", "in_future"]

_TTL_DAYS = re.compile(r"TTL\s+toDateTime\(\s*`?(\w+)`?\s*\)\s*\+\s*toIntervalDay\((\d+)\)")


def ttl_days(engine_full: str, column: str) -> int | None:
    """The N of ``TTL toDateTime(column) + toIntervalDay(N)`` (None: no such TTL)."""
    for match in _TTL_DAYS.finditer(engine_full):
        if match.group(1) == column:
            return int(match.group(2))
    return None


def read_ttl_days(client: Any, database: str, table: str, column: str) -> int | None:
    """The table's retention in days, as ClickHouse has it now."""
    engine = client.command(
        "SELECT engine_full FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        parameters={"db": database, "t": table},
    )
    return ttl_days(str(engine), column)


class Horizon:
    """The window of times a table keeps; ``verdict`` says why a time falls outside it.

    ``refresh`` runs on the thread that owns the ClickHouse client (the loop's writer);
    ``verdict`` on the consumer's thread: ``days`` is swapped as one value.
    """

    def __init__(
        self,
        read_days: Callable[[], int | None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_days = read_days
        self._now = now
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self.days: int | None = None

    def refresh(self) -> int | None:
        """Read the retention now (raises what the read raises; ``days`` stays as it was)."""
        days = self._read_days()
        with self._lock:
            self.days = days
            self._read_at = self._clock()
        return days

    def refresh_if_due(self) -> None:
        with self._lock:
            due = self._read_at is None or self._clock() - self._read_at >= self._refresh_seconds
        if due:
            self.refresh()

    def verdict(self, when: datetime) -> Verdict | None:
        days = self.days
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        keep = timedelta(days=days or 0)
        if when > DATETIME_END - keep:
            return "in_future"
        if when < DATETIME_START or (days is not None and when <= self._now() - keep):
            return "outside_retention"
        return None
