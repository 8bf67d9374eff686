"""The simulated time model: a history to learn from, then an attack period, ending at ``end``.

See the package docstring. Everything here is event time (UTC); nothing reads the clock
except ``Timeline.ending_now``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)
LATEST_OFFSET = timedelta(hours=14)
"""The largest UTC offset of any zone: local midnight is at most this long before UTC's."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def at_local(day: date, hours: float, tz: str) -> datetime:
    """``hours`` after local midnight of ``day`` in ``tz``, as UTC (hours may exceed 24).

    Wall-clock arithmetic: 08:30 stays 08:30 across a daylight-saving change.
    """
    whole = int(hours * 3600)
    local = datetime(day.year, day.month, day.day, tzinfo=zone(tz)) + timedelta(seconds=whole)
    # Adding a timedelta to an aware datetime is wall-clock arithmetic in zoneinfo; fold
    # ambiguity is irrelevant at the minute scale we simulate.
    return local.astimezone(UTC)


def local_hours(moment: datetime, tz: str) -> float:
    """The local hour of day of ``moment`` in ``tz``, as a float (08:30 -> 8.5)."""
    local = moment.astimezone(zone(tz))
    return local.hour + local.minute / 60 + local.second / 3600


def sim_uuid(moment: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for ``moment`` with bits from ``rng``: time-ordered and reproducible."""
    ms = int(moment.timestamp() * 1000)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rng.getrandbits(12) << 64
    value |= 0b10 << 62
    value |= rng.getrandbits(62)
    return uuid.UUID(int=value)


@dataclass(frozen=True)
class Timeline:
    """``[start, end)``: ``history_days`` to learn from, then ``attack_days`` with scenarios."""

    end: datetime
    history_days: int = 28
    attack_days: int = 7

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise ValueError("Timeline.end must be timezone-aware (UTC)")
        if self.history_days < 1 or self.attack_days < 1:
            raise ValueError("history_days and attack_days must be at least 1")
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @classmethod
    def ending_now(cls, history_days: int = 28, attack_days: int = 7) -> Timeline:
        """Ending at the start of the current minute: no event is in the future."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        return cls(end=now, history_days=history_days, attack_days=attack_days)

    @property
    def days(self) -> int:
        return self.history_days + self.attack_days

    @property
    def start(self) -> datetime:
        return self.end - self.days * DAY

    @property
    def attack_start(self) -> datetime:
        return self.end - self.attack_days * DAY

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def local_dates(self) -> list[date]:
        """Every calendar date that is a local day somewhere during the timeline."""
        first = (self.start - LATEST_OFFSET).date()
        last = (self.end + LATEST_OFFSET).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def attack_dates(self, tz: str) -> list[date]:
        """Local dates in ``tz`` that lie entirely within the attack period."""
        first = self.attack_start.astimezone(zone(tz)).date() + timedelta(days=1)
        last = self.end.astimezone(zone(tz)).date() - timedelta(days=1)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]
