"""An IANA zone from a place (``zone1970.tab``): what actors without a zone are scored in."""

from __future__ import annotations

import pytest

from auditstream.detectors.timeutil import zone_at


@pytest.mark.parametrize(
    ("country", "lat", "lon", "zone"),
    [
        ("DE", None, None, "Europe/Berlin"),  # its own zone, not Zurich (shared with Busingen)
        ("US", None, None, "America/New_York"),  # a country's first-listed zone
        ("US", 34.05, -118.24, "America/Los_Angeles"),  # the nearest of the country's zones
        ("AU", -31.95, 115.86, "Australia/Perth"),
        ("IN", 19.07, 72.88, "Asia/Kolkata"),
        (None, 35.68, 139.69, "Asia/Tokyo"),  # coordinates alone
        (None, None, None, None),
        ("XX", None, None, None),
    ],
)
def test_zone_at(
    country: str | None, lat: float | None, lon: float | None, zone: str | None
) -> None:
    assert zone_at(country, lat, lon) == zone
