"""Tenants and their people: roles, time zones, working hours, usual places and devices.

Every user has a few *places* they sign in from (the office's shared address, their home,
their phone), each with its own address, location, channel and device, and keeps to them:
what the geo detectors learn as normal. Day workers keep office hours in their own time
zone (some start early, some late; some also check in in the evening or at weekends);
night-shift workers (support, operations) work 22:00-06:00. The admins (not the owner)
are the *data stewards*, whose planned bulk clean-ups the tenant allows in office hours in
its detector config (``detector_config``).

Addresses are from the documentation ranges (RFC 5737 / RFC 3849), never geolocated.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from auditstream.detectors.geo import great_circle_km


@dataclass(frozen=True)
class City:
    name: str
    country: str
    timezone: str
    latitude: float
    longitude: float

    def location(self, jitter_km: float = 0.0, rng: random.Random | None = None) -> dict[str, Any]:
        """The ``location`` field of an event here, moved up to ``jitter_km`` at random."""
        lat, lon = self.latitude, self.longitude
        if jitter_km and rng is not None:
            lat += rng.uniform(-1, 1) * jitter_km / 111.0
            lon += rng.uniform(-1, 1) * jitter_km / (111.0 * max(0.2, math.cos(math.radians(lat))))
        return {
            "country": self.country,
            "city": self.name,
            "latitude": round(lat, 4),
            "longitude": round(lon, 4),
        }

    def km_to(self, other: City) -> float:
        return great_circle_km(self.latitude, self.longitude, other.latitude, other.longitude)


def _c(name: str, country: str, tz: str, lat: float, lon: float) -> City:
    return City(name, country, tz, lat, lon)


# Headquarters and, per country, other cities people live in.
HUBS: list[tuple[City, list[City]]] = [
    (
        _c("Berlin", "DE", "Europe/Berlin", 52.52, 13.405),
        [_c("Potsdam", "DE", "Europe/Berlin", 52.39, 13.06)],
    ),
    (
        _c("New York", "US", "America/New_York", 40.71, -74.01),
        [_c("Newark", "US", "America/New_York", 40.74, -74.17)],
    ),
    (
        _c("Tokyo", "JP", "Asia/Tokyo", 35.68, 139.69),
        [_c("Yokohama", "JP", "Asia/Tokyo", 35.44, 139.64)],
    ),
    (
        _c("London", "GB", "Europe/London", 51.51, -0.13),
        [_c("Reading", "GB", "Europe/London", 51.45, -0.97)],
    ),
    (
        _c("São Paulo", "BR", "America/Sao_Paulo", -23.55, -46.63),
        [_c("Campinas", "BR", "America/Sao_Paulo", -22.91, -47.06)],
    ),
    (
        _c("Sydney", "AU", "Australia/Sydney", -33.87, 151.21),
        [_c("Wollongong", "AU", "Australia/Sydney", -34.42, 150.89)],
    ),
    (
        _c("Bengaluru", "IN", "Asia/Kolkata", 12.97, 77.59),
        [_c("Mysuru", "IN", "Asia/Kolkata", 12.30, 76.64)],
    ),
    (
        _c("San Francisco", "US", "America/Los_Angeles", 37.77, -122.42),
        [_c("Oakland", "US", "America/Los_Angeles", 37.80, -122.27)],
    ),
    (
        _c("Paris", "FR", "Europe/Paris", 48.86, 2.35),
        [_c("Versailles", "FR", "Europe/Paris", 48.80, 2.13)],
    ),
    (
        _c("Toronto", "CA", "America/Toronto", 43.65, -79.38),
        [_c("Hamilton", "CA", "America/Toronto", 43.26, -79.87)],
    ),
]

TRAVEL_DESTINATIONS: list[City] = [
    _c("Munich", "DE", "Europe/Berlin", 48.14, 11.58),
    _c("Madrid", "ES", "Europe/Madrid", 40.42, -3.70),
    _c("Lisbon", "PT", "Europe/Lisbon", 38.72, -9.14),
    _c("Amsterdam", "NL", "Europe/Amsterdam", 52.37, 4.90),
    _c("Chicago", "US", "America/Chicago", 41.88, -87.63),
    _c("Boston", "US", "America/New_York", 42.36, -71.06),
    _c("Seattle", "US", "America/Los_Angeles", 47.61, -122.33),
    _c("Osaka", "JP", "Asia/Tokyo", 34.69, 135.50),
    _c("Seoul", "KR", "Asia/Seoul", 37.57, 126.98),
    _c("Singapore", "SG", "Asia/Singapore", 1.35, 103.82),
    _c("Edinburgh", "GB", "Europe/London", 55.95, -3.19),
    _c("Melbourne", "AU", "Australia/Melbourne", -37.81, 144.96),
    _c("Rio de Janeiro", "BR", "America/Sao_Paulo", -22.91, -43.17),
    _c("Mumbai", "IN", "Asia/Kolkata", 19.08, 72.88),
    _c("Vancouver", "CA", "America/Vancouver", 49.28, -123.12),
    _c("Lyon", "FR", "Europe/Paris", 45.76, 4.84),
    _c("Mexico City", "MX", "America/Mexico_City", 19.43, -99.13),
    _c("Dubai", "AE", "Asia/Dubai", 25.20, 55.27),
]

ATTACKER_CITIES: list[City] = [
    _c("Lagos", "NG", "Africa/Lagos", 6.52, 3.38),
    _c("Jakarta", "ID", "Asia/Jakarta", -6.21, 106.85),
    _c("Lima", "PE", "America/Lima", -12.05, -77.04),
    _c("Hanoi", "VN", "Asia/Ho_Chi_Minh", 21.03, 105.85),
    _c("Johannesburg", "ZA", "Africa/Johannesburg", -26.20, 28.05),
    _c("Manila", "PH", "Asia/Manila", 14.60, 120.98),
    _c("Karachi", "PK", "Asia/Karachi", 24.86, 67.01),
    _c("Cairo", "EG", "Africa/Cairo", 30.04, 31.24),
    _c("Bogotá", "CO", "America/Bogota", 4.71, -74.07),
    _c("Almaty", "KZ", "Asia/Almaty", 43.24, 76.89),
]

TENANT_NAMES = [
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "wonka", "stark",
    "wayne", "tyrell", "cyberdyne", "soylent",
]  # fmt: skip
FIRST = [
    "Ada", "Linus", "Grace", "Ken", "Barbara", "Dennis", "Margaret", "Alan", "Radia", "Tim",
    "Frances", "Edsger", "Hedy", "John", "Katherine", "Donald", "Sophie", "Yukihiro", "Anita",
    "Guido", "Shafi", "Leslie", "Mary", "Bjarne", "Fei-Fei", "Niklaus", "Adele", "Vint",
    "Chieko", "Kiran", "Amara", "Mateo", "Ingrid", "Tomás", "Aiko", "Oluwaseun",
]  # fmt: skip
LAST = [
    "Lovelace", "Torvalds", "Hopper", "Thompson", "Liskov", "Ritchie", "Hamilton", "Kay",
    "Perlman", "Berners-Lee", "Allen", "Dijkstra", "Lamarr", "Backus", "Johnson", "Knuth",
    "Wilson", "Matsumoto", "Borg", "van Rossum", "Goldwasser", "Lamport", "Shaw", "Stroustrup",
    "Li", "Wirth", "Goldberg", "Cerf", "Asakawa", "Mazumdar", "Okafor", "García",
]  # fmt: skip
BROWSERS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
]
PHONES = [
    "Workline/5.12 (iPhone; iOS 18.1; Scale/3.00)",
    "Workline/5.12 (Android 15; Pixel 8)",
    "Workline/5.11 (Android 14; SM-S921B)",
]
ATTACKER_AGENTS = [
    "python-requests/2.32.3",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/118.0 Safari/537.36",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MANAGER = "manager"
    FINANCE = "finance"
    MEMBER = "member"


class Shift(StrEnum):
    DAY = "day"
    NIGHT = "night"


@dataclass(frozen=True)
class Place:
    """Somewhere a user signs in from, with the device they use there."""

    kind: str
    """``office``, ``home`` or ``phone``."""
    ip: str
    city: City
    location: dict[str, Any]
    channel: str
    user_agent: str


@dataclass(frozen=True)
class User:
    tenant_id: str
    id: str
    display_name: str
    email: str
    role: Role
    timezone: str
    shift: Shift
    work_start: float
    """Local hour the working day starts (22.0 for the night shift)."""
    work_hours: float
    office: Place
    home: Place
    phone: Place
    office_share: float
    """Share of working days spent at the office (0: fully remote)."""
    weekend_rate: float
    """Chance of a short weekend session on a weekend day."""
    evening_rate: float
    """Chance of an evening check-in on a working day (a learned habit, not an anomaly)."""
    activity: float
    """Mean actions per full working day."""
    steward: bool = False
    """An admin whose planned bulk clean-ups the tenant allows (detector config)."""

    @property
    def actor(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "member",
            "display_name": self.display_name,
            "email": self.email,
            "timezone": self.timezone,
        }

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    timezone: str
    hq: City
    office_ip: str
    users: tuple[User, ...] = field(default=())

    def user(self, user_id: str) -> User:
        for user in self.users:
            if user.id == user_id:
                return user
        raise KeyError(f"{user_id} is not a user of {self.id}")

    @property
    def day_workers(self) -> list[User]:
        return [u for u in self.users if u.shift is Shift.DAY]

    @property
    def night_workers(self) -> list[User]:
        return [u for u in self.users if u.shift is Shift.NIGHT]

    @property
    def stewards(self) -> list[User]:
        return [u for u in self.users if u.steward]


@dataclass(frozen=True)
class Org:
    """Every simulated tenant."""

    tenants: tuple[Tenant, ...]

    def tenant(self, tenant_id: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(f"no tenant {tenant_id!r}")

    @property
    def users(self) -> list[User]:
        return [u for t in self.tenants for u in t.users]


def office_ip(tenant_index: int) -> str:
    if tenant_index < 254:
        return f"192.0.2.{tenant_index + 1}"
    return f"2001:db8:0:{tenant_index:x}::1"


def attacker_ip(index: int) -> str:
    if index < 254:
        return f"198.51.100.{index + 1}"
    return f"2001:db8:bad:{index:x}::1"


def _user_ip(tenant_index: int, user_index: int, device: int) -> str:
    return f"2001:db8:{tenant_index + 1:x}:{user_index + 1:x}:{device:x}::1"


def _role(index: int, n: int) -> Role:
    if index == 0:
        return Role.OWNER
    if index == 1 or (n >= 12 and index % 12 == 5):
        return Role.ADMIN
    if index % 12 in (2, 9):
        return Role.MANAGER
    if index % 12 == 3:
        return Role.FINANCE
    return Role.MEMBER


def _is_night(index: int, n: int) -> bool:
    """About one in fifteen, never the owner or an admin; at least one from 8 users on."""
    return n >= 8 and index % 15 == 7


def build_org(tenants: int, users_per_tenant: int, seed: int) -> Org:
    """``tenants`` tenants of ``users_per_tenant`` people each, the same for the same seed."""
    if tenants < 1 or users_per_tenant < 2:
        raise ValueError("need at least 1 tenant of at least 2 users")
    rng = random.Random(f"{seed}:org")
    out = []
    for t in range(tenants):
        hq, others = HUBS[t % len(HUBS)]
        tid = TENANT_NAMES[t] if t < len(TENANT_NAMES) else f"tenant{t:03d}"
        office_addr = office_ip(t)
        users = []
        names: set[str] = set()
        for u in range(users_per_tenant):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            while f"{first} {last}" in names and len(names) < len(FIRST) * len(LAST):
                first, last = rng.choice(FIRST), rng.choice(LAST)
            names.add(f"{first} {last}")
            role = _role(u, users_per_tenant)
            night = _is_night(u, users_per_tenant)
            remote = not night and rng.random() < 0.12
            home_city = rng.choice(others) if remote and others else hq
            browser = rng.choice(BROWSERS)
            office = Place("office", office_addr, hq, hq.location(0.5, rng), "web", browser)
            home = Place(
                "home",
                _user_ip(t, u, 1),
                home_city,
                home_city.location(8.0, rng),
                rng.choice(["web", "web", "desktop"]),
                browser,
            )
            phone = Place(
                "phone", _user_ip(t, u, 2), home_city, home.location, "mobile", rng.choice(PHONES)
            )
            users.append(
                User(
                    tenant_id=tid,
                    id=f"usr_{tid}_{u:03d}",
                    display_name=f"{first} {last}",
                    email=f"{first.lower()}.{last.lower().replace(' ', '')}@{tid}.example",
                    role=role,
                    timezone=home_city.timezone,
                    shift=Shift.NIGHT if night else Shift.DAY,
                    work_start=22.0
                    if night
                    else rng.choice([7.0, 7.5, 8.0, 8.5, 8.5, 9.0, 9.0, 9.5, 10.0]),
                    work_hours=8.0 if night else rng.choice([7.5, 8.0, 8.0, 8.5, 9.0]),
                    office=office,
                    home=home,
                    phone=phone,
                    office_share=0.0 if remote else rng.choice([0.2, 0.4, 0.6, 0.8, 1.0]),
                    weekend_rate=0.0 if rng.random() < 0.6 else rng.uniform(0.1, 0.4),
                    evening_rate=0.0 if night or rng.random() < 0.8 else rng.uniform(0.2, 0.4),
                    activity=rng.lognormvariate(math.log(14), 0.35),
                    steward=role is Role.ADMIN,
                )
            )
        out.append(
            Tenant(
                id=tid,
                name=tid.title(),
                timezone=hq.timezone,
                hq=hq,
                office_ip=office_addr,
                users=tuple(users),
            )
        )
    return Org(tuple(out))


def with_activity(org: Org, factor: float) -> Org:
    """The same org with every user's mean activity scaled by ``factor`` (to fit a count)."""
    from dataclasses import replace

    return Org(
        tuple(
            replace(t, users=tuple(replace(u, activity=u.activity * factor) for u in t.users))
            for t in org.tenants
        )
    )


def detector_config(org: Org, cleanup_hours: str = "08:00-18:00") -> str:
    """The per-tenant detector TOML this org's operators would write.

    Each tenant's time zone, and its data stewards' planned clean-ups allowed in office
    hours (their bulk deletions at other hours still alert).
    """
    lines = ["# Written by auditstream simulate: per-tenant detector settings for this org.", ""]
    for tenant in org.tenants:
        lines += [f"[tenants.{tenant.id}]", f'timezone = "{tenant.timezone}"', ""]
        stewards = tenant.stewards
        if stewards:
            names = ", ".join(u.display_name for u in stewards)
            ids = ", ".join(f'"{u.id}"' for u in stewards)
            lines += [
                f"[tenants.{tenant.id}.mass_deletion]",
                f"# planned clean-ups by the admins: {names}",
                f"allowed_actors = [{ids}]",
                f'allowed_hours = "{cleanup_hours}"',
                "",
            ]
    return "\n".join(lines)
