"""What the store can hold: the limits every stage checks against, written down once.

ClickHouse computes the tables' TTL (``toDateTime(occurred_at) + INTERVAL n DAY``) in
``DateTime``, which ends at 2106-02-07 06:28:15 UTC and wraps to 1970 past it: a row whose
TTL falls past that moment would be deleted at the next merge.
"""

from __future__ import annotations

from datetime import UTC, datetime

DATETIME_START = datetime(1970, 1, 1, tzinfo=UTC)
DATETIME_END = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)
"""The first and last second a ClickHouse ``DateTime`` holds."""

RETENTION_MARGIN_DAYS = 366
"""Room left between a new event's TTL and the end of ``DateTime``: events a day in the
future (the accepted skew) and a year of running on the same setting stay storable."""


def max_retention_days(now: datetime) -> int:
    """The longest retention whose TTL, for events arriving over the next year, stays within
    ``DateTime`` (about 78 years in 2026)."""
    return (DATETIME_END - now).days - RETENTION_MARGIN_DAYS
