"""Event-time helpers shared by detectors."""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo

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


@dataclass(frozen=True)
class ZoneEntry:
    countries: tuple[str, ...]
    """The zone's own country first, then others that use it (``zone1970.tab``)."""
    latitude: float
    longitude: float
    zone: str


def _coordinate(text: str, degree_digits: int) -> float:
    sign = -1.0 if text[0] == "-" else 1.0
    digits = text[1:]
    degrees = int(digits[:degree_digits])
    minutes = int(digits[degree_digits : degree_digits + 2])
    seconds = int(digits[degree_digits + 2 :] or 0)
    return sign * (degrees + minutes / 60 + seconds / 3600)


@lru_cache(maxsize=1)
def zone_table() -> tuple[ZoneEntry, ...]:
    """IANA's ``zone1970.tab``: each zone with the countries it covers and its main city's
    coordinates (from the system's tz database, else the ``tzdata`` package)."""
    text: str | None = None
    for base in TZPATH:
        with contextlib.suppress(OSError):
            text = (Path(base) / "zone1970.tab").read_text()
            break
    if text is None:
        with contextlib.suppress(ModuleNotFoundError, OSError):
            text = (resources.files("tzdata.zoneinfo") / "zone1970.tab").read_text()
    if text is None:
        return ()
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        match = re.match(r"^([+-]\d+)([+-]\d+)$", parts[1])
        if match is None:
            continue
        lat, lon = match.groups()
        out.append(
            ZoneEntry(
                tuple(parts[0].split(",")),
                _coordinate(lat, 2),
                _coordinate(lon, 3),
                parts[2],
            )
        )
    return tuple(out)


@lru_cache(maxsize=4096)
def zone_at(country: str | None, latitude: float | None, longitude: float | None) -> str | None:
    """The IANA zone of a place: the zone of ``country`` whose main city is nearest (a
    country's first-listed zone when there are no coordinates); the nearest zone anywhere
    for coordinates without a country; None when nothing is known."""
    table = zone_table()
    if country:
        # Its own zones (listed first) before zones it shares with another country.
        candidates = [z for z in table if z.countries[0] == country]
        candidates = candidates or [z for z in table if country in z.countries]
    else:
        candidates = list(table)
    if not candidates or (country is None and (latitude is None or longitude is None)):
        return None
    if len(candidates) == 1 or latitude is None or longitude is None:
        return candidates[0].zone
    lat, lon = math.radians(latitude), math.radians(longitude)

    def distance(z: ZoneEntry) -> float:
        zl, zo = math.radians(z.latitude), math.radians(z.longitude)
        return math.acos(
            max(
                -1.0,
                min(
                    1.0,
                    math.sin(lat) * math.sin(zl)
                    + math.cos(lat) * math.cos(zl) * math.cos(lon - zo),
                ),
            )
        )

    return min(candidates, key=distance).zone
