"""Event-time helpers shared by detectors."""

from __future__ import annotations

import re
from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from auditstream.schemas.event import AuditEvent


def millis(value: datetime) -> int:
    return int(value.timestamp()) * 1000 + value.microsecond // 1000


def from_millis(value: int) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(value / 1000, tz=UTC)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(event: AuditEvent, tenant_zone: str) -> datetime:
    """When it happened on the actor's wall clock: the actor's zone, else the tenant's.

    Wall-clock conversion through the IANA database is what keeps hour-of-day profiles
    right across daylight-saving changes.
    """
    return event.occurred_at.astimezone(zone(event.actor.timezone or tenant_zone))


_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_hours(spec: str) -> tuple[time, time]:
    """``"08:00-18:30"`` -> (08:00, 18:30). A range may wrap midnight: ``"22:00-06:00"``."""
    match = _HOURS.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a time range like '08:00-18:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"{spec!r} has an hour or minute out of range")
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


def within(moment: time, hours: tuple[time, time]) -> bool:
    start, end = hours
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end
