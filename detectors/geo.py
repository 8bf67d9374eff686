"""Sign-ins from where an actor never was, and sign-ins too far apart to travel between.

Both look at successful sign-ins only and place them with ``geoip.merge``: the location the
producer sent wins, the IP (offline database) fills the gaps. Sign-ins from networks listed
in ``ignored_networks`` (VPN or proxy egress, e.g. ``"AS13335"`` or ``"198.51.100.0/24"``)
are neither placed nor learnt. What they remember is the resolved place, so a comparison
never depends on a second lookup.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from typing import Any

from pydantic import Field, field_validator

from auditstream.detectors.base import Detector, DetectorSettings, Finding
from auditstream.detectors.geoip import GeoPoint, GeoResolver, merge, parse_global
from auditstream.detectors.timeutil import from_millis, millis
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import Observation, Severity
from auditstream.schemas.event import AuditEvent, Outcome

VALID_ACCOUNTS = ("T1078", "Valid Accounts")
EARTH_RADIUS_KM = 6371.0088
MAX_LABEL = 120
"""Longest place name kept in state."""


class GeoSettings(DetectorSettings):
    ignored_networks: list[str] = Field(
        default_factory=list,
        description="Networks whose sign-ins are skipped: ASNs ('AS13335') or CIDRs",
    )

    @field_validator("ignored_networks")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            text = value.strip()
            if text.upper().startswith("AS") and text[2:].isdigit():
                out.append(text.upper())
                continue
            try:
                out.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                raise ValueError(f"{value!r} is neither an ASN ('AS13335') nor a CIDR") from None
        return out


def _ignored(event: AuditEvent, point: GeoPoint | None, patterns: list[str]) -> bool:
    if not patterns:
        return False
    if point is not None and point.network in patterns:
        return True
    address = parse_global(event.ip)
    if address is None:
        return False
    return any(
        not p.startswith("AS") and address in ipaddress.ip_network(p, strict=False)
        for p in patterns
    )


def _is_success_sign_in(event: AuditEvent) -> bool:
    return event.action is Action.SIGN_IN and event.outcome is Outcome.SUCCESS


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere of the Earth's mean radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class _GeoDetector(Detector[Any]):
    mitre = VALID_ACCOUNTS

    def __init__(self, resolver: GeoResolver | None = None) -> None:
        self.resolver = resolver or GeoResolver()

    def wants(self, event: AuditEvent) -> bool:
        return _is_success_sign_in(event) and (event.ip is not None or event.location is not None)

    def place(self, event: AuditEvent, settings: GeoSettings) -> GeoPoint | None:
        point = merge(event.location, event.ip, self.resolver)
        if _ignored(event, point, settings.ignored_networks):
            return None
        return point


class NewLocationSettings(GeoSettings):
    min_history: int = Field(
        default=3, ge=1, description="Located sign-ins seen before a new place is odd"
    )
    remember: int = Field(
        default=20, ge=1, le=200, description="Countries and networks remembered per actor"
    )
    networks: bool = Field(
        default=True, description="Also alert on a new network (ASN, /24, /48) in a known country"
    )
    established: int = Field(
        default=30,
        ge=0,
        description="Until this many located sign-ins, a place the tenant's actors use is not new",
    )


def _remember(seen: list[str], value: str, limit: int) -> list[str]:
    """Most recent last, no duplicates, at most ``limit``."""
    return ([v for v in seen if v != value] + [value])[-limit:]


TENANT_PLACES = 500
"""Countries and networks remembered per tenant (as one partition sees it)."""


class NewLocation(_GeoDetector):
    """A successful sign-in from a country or network never seen for the actor.

    Cold start: while the actor has fewer than ``established`` located sign-ins, a country or
    network that the tenant's other actors sign in from (the office, a common ISP, the home
    country) is not new: a new employee's first weeks bring places new to *them* but not to
    their organisation. A place nobody in the tenant uses still alerts, stating how much of
    the actor's history it rests on.
    """

    name = "new_location"
    settings = NewLocationSettings

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: NewLocationSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        point = self.place(event, settings)
        if point is None or (point.country is None and point.network is None):
            return []
        seen = int(state.get("n", 0))
        countries: list[str] = state.get("c", [])
        networks: list[str] = state.get("k", [])
        new_country = point.country is not None and point.country not in countries
        new_network = point.network is not None and point.network not in networks
        state["n"] = seen + 1
        if point.country is not None:
            state["c"] = _remember(countries, point.country, settings.remember)
        if point.network is not None:
            state["k"] = _remember(networks, point.network, settings.remember)
        peers_countries: list[str] = tenant.get("c", [])
        peers_networks: list[str] = tenant.get("k", [])
        if seen < settings.established:  # the tenant's places carry a new actor
            new_country = new_country and point.country not in peers_countries
            new_network = new_network and point.network not in peers_networks
        if point.country is not None:
            tenant["c"] = _remember(peers_countries, point.country, TENANT_PLACES)
        if point.network is not None:
            tenant["k"] = _remember(peers_networks, point.network, TENANT_PLACES)
        if seen < settings.min_history:
            return []
        if new_country and countries:
            kind, what = "country", str(point.country)
        elif new_network and networks and settings.networks:
            kind, what = "network", _network(point)
        else:
            return []
        usual = (
            f"usual countries: {', '.join(reversed(countries)) or 'none known'}; "
            f"usual networks: {', '.join(reversed(networks)) or 'none known'}"
        )
        return [
            Finding(
                severity=Severity.MEDIUM,
                title=f"{event.actor.id} signed in from a new {kind}: {what}",
                explanation=(
                    f"{event.actor.id} signed in from {point.label()} "
                    f"(network {_network(point)}), a {kind} not seen in their "
                    f"{seen} earlier located sign-ins"
                    + (
                        f" nor used by anyone else in the tenant (a short history: the "
                        f"tenant's places count until {settings.established} sign-ins)"
                        if seen < settings.established
                        else ""
                    )
                    + f"; {usual}."
                ),
                window_start=event.occurred_at,
                window_end=event.occurred_at,
                evidence=[event.event_id],
                observations=[
                    Observation(metric="sign_ins_before", observed=seen),
                    Observation(metric="known_countries", observed=len(countries)),
                    Observation(metric="known_networks", observed=len(networks)),
                ],
            )
        ]


def _network(point: GeoPoint) -> str:
    if point.network and point.network_name:
        return f"{point.network} {point.network_name}"
    return point.network or "unknown"


class ImpossibleTravelSettings(GeoSettings):
    max_speed_kmh: float = Field(
        default=900.0, gt=0, description="Faster than this between sign-ins is impossible"
    )
    min_distance_km: float = Field(
        default=300.0,
        ge=0,
        description="Shorter hops are ignored: IP geolocation is imprecise at this scale",
    )


class ImpossibleTravel(_GeoDetector):
    """Consecutive successful sign-ins further apart than anyone can travel in between."""

    name = "impossible_travel"
    settings = ImpossibleTravelSettings

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: ImpossibleTravelSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        point = self.place(event, settings)
        if point is None or point.latitude is None or point.longitude is None:
            return []
        now = millis(event.occurred_at)
        label = point.label()[:MAX_LABEL]
        here = [
            now,
            round(point.latitude, 4),
            round(point.longitude, 4),
            label,
            str(event.event_id),
        ]
        previous: list[Any] | None = state.get("p")
        if previous is None or now >= previous[0]:
            state["p"] = here
        if previous is None:
            return []
        first, last = sorted((previous, here), key=lambda p: p[0])
        km = great_circle_km(first[1], first[2], last[1], last[2])
        if km < settings.min_distance_km:
            return []
        minutes = (last[0] - first[0]) / 60_000
        speed = math.inf if minutes == 0 else km / (minutes / 60)
        if speed <= settings.max_speed_kmh:
            return []
        if minutes == 0:
            pace = "at the same moment, which no trip can do"
            speed_obs: list[Observation] = []
        else:
            pace = f"in {minutes:,.1f} minutes, an implied {speed:,.0f} km/h"
            speed_obs = [
                Observation(
                    metric="travel_speed",
                    observed=round(speed, 1),
                    baseline=settings.max_speed_kmh,
                    unit="km/h",
                )
            ]
        return [
            Finding(
                severity=Severity.HIGH,
                title=f"Impossible travel by {event.actor.id}: {first[3]} -> {last[3]}",
                explanation=(
                    f"{event.actor.id} signed in from {first[3]} and then from {last[3]}: "
                    f"{km:,.0f} km {pace}; the limit is {settings.max_speed_kmh:,.0f} km/h "
                    f"(hops under {settings.min_distance_km:,.0f} km are ignored)."
                ),
                window_start=from_millis(first[0]),
                window_end=from_millis(last[0]),
                evidence=[uuid.UUID(first[4]), uuid.UUID(last[4])],
                observations=[
                    *speed_obs,
                    Observation(metric="distance", observed=round(km, 1), unit="km"),
                    Observation(metric="elapsed", observed=round(minutes, 2), unit="min"),
                ],
            )
        ]
