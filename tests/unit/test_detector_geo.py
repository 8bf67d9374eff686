"""New-location and impossible-travel detectors, through the engine and directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.detectors import config
from auditstream.detectors.base import Detector, Scope
from auditstream.detectors.config import DetectorConfigError
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.geo import (
    ImpossibleTravel,
    ImpossibleTravelSettings,
    NewLocation,
    NewLocationSettings,
    great_circle_km,
)
from auditstream.detectors.geoip import GeoPoint, GeoResolver, StaticTable
from auditstream.detectors.registry import default_detectors
from auditstream.schemas.alert import Alert, Severity
from auditstream.schemas.event import AuditEvent

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

BERLIN = "5.1.0.10"
MUNICH = "5.2.0.10"
PARIS = "5.3.0.10"
NEW_YORK = "5.4.0.10"
POTSDAM = "5.5.0.10"
HAMBURG = "5.6.0.10"
VPN = "5.7.0.10"

TABLE = StaticTable(
    {
        "5.1.0.0/16": GeoPoint("DE", "Berlin", 52.52, 13.405, "AS3320", "Deutsche Telekom AG"),
        "5.2.0.0/16": GeoPoint("DE", "Munich", 48.1351, 11.582, "AS3320", "Deutsche Telekom AG"),
        "5.3.0.0/16": GeoPoint("FR", "Paris", 48.8566, 2.3522, "AS3215", "Orange S.A."),
        "5.4.0.0/16": GeoPoint("US", "New York", 40.7128, -74.006, "AS7922", "Comcast"),
        "5.5.0.0/16": GeoPoint("DE", "Potsdam", 52.3906, 13.0645, "AS3320", "Deutsche Telekom AG"),
        "5.6.0.0/16": GeoPoint("DE", "Hamburg", 53.5511, 9.9937, "AS8881", "Versatel"),
        "5.7.0.0/16": GeoPoint("SG", "Singapore", 1.3521, 103.8198, "AS13335", "Cloudflare"),
    }
)


def sign_in(
    at: datetime,
    ip: str | None = BERLIN,
    location: dict[str, Any] | None = None,
    actor: str = "usr_1",
    **fields: Any,
) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "occurred_at": at,
            "tenant_id": "acme",
            "actor": {"id": actor},
            "action": "sign_in",
            "resource": {"type": "session", "id": "s1"},
            "ip": ip,
            "location": location,
            **fields,
        }
    )


class Run:
    """Feeds events through the engine, with the state JSON round-tripped in between."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        resolver = GeoResolver(TABLE)
        self.detectors: list[Detector[Any]] = [NewLocation(resolver), ImpossibleTravel(resolver)]
        defaults: dict[str, Any] = {"suppress_minutes": 0, **(settings or {})}
        self.engine = DetectionEngine(
            self.detectors, config.build({"defaults": defaults}, self.detectors)
        )
        self.state: dict[str, Any] = {}
        self.tenant: dict[str, Any] = {}

    def feed(self, *events: AuditEvent) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            if self.engine.wants(event, Scope.ACTOR):
                alerts += self.engine.process(event, self.state, Scope.ACTOR, self.tenant)
            self.state = json.loads(json.dumps(self.state))
            self.tenant = json.loads(json.dumps(self.tenant))
        return alerts

    def rules(self, *events: AuditEvent) -> list[str]:
        return [a.rule for a in self.feed(*events)]


def history(n: int = 3, ip: str = BERLIN, start: datetime = T0) -> list[AuditEvent]:
    return [sign_in(start + timedelta(days=i), ip) for i in range(n)]


def later(days: float = 3, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


# --- new location ------------------------------------------------------------------------


def test_new_country_after_history_fires() -> None:
    run = Run()
    assert run.feed(*history()) == []
    [alert] = run.feed(sign_in(later(), PARIS))
    assert alert.rule == "new_location"
    assert alert.severity is Severity.MEDIUM
    assert (alert.mitre_technique, alert.mitre_name) == ("T1078", "Valid Accounts")
    assert "new country: FR" in alert.title
    assert "Paris, FR" in alert.explanation
    assert "AS3215 Orange S.A." in alert.explanation
    assert "usual countries: DE" in alert.explanation
    assert "usual networks: AS3320" in alert.explanation
    assert {o.metric: o.observed for o in alert.observations}["sign_ins_before"] == 3


def test_known_country_and_network_is_quiet() -> None:
    run = Run()
    assert run.rules(*history(), sign_in(later(), MUNICH), sign_in(later(4), BERLIN)) == []


def test_not_enough_history_is_quiet() -> None:
    run = Run()
    assert run.rules(*history(2), sign_in(later(), PARIS)) == []
    # The configurable minimum: one earlier sign-in is enough here.
    assert Run({"new_location": {"min_history": 1}}).rules(
        *history(1), sign_in(later(), PARIS)
    ) == ["new_location"]


def test_new_network_in_known_country() -> None:
    run = Run()
    [alert] = run.feed(*history(), sign_in(later(), HAMBURG))
    assert "new network: AS8881 Versatel" in alert.title
    assert "Hamburg, DE" in alert.explanation
    quiet = Run({"new_location": {"networks": False}})
    assert quiet.rules(*history(), sign_in(later(), HAMBURG)) == []


def test_prefix_stands_in_for_an_unknown_asn() -> None:
    run = Run()
    events = [sign_in(T0 + timedelta(days=i), "9.9.9.9") for i in range(3)]
    [alert] = run.feed(*events, sign_in(later(), "9.9.10.1"))
    assert "new network: 9.9.10.0/24" in alert.title
    assert "usual networks: 9.9.9.0/24" in alert.explanation
    six = Run()
    assert six.rules(*history(3, "2a02:1:2:3::1"), sign_in(later(), "2a02:1:2:ff::9")) == []
    assert six.rules(sign_in(later(4), "2a02:1:3::1")) == ["new_location"]


def test_private_ip_is_quiet_and_not_counted() -> None:
    run = Run()
    private = [sign_in(T0 + timedelta(days=i), "10.0.0.7") for i in range(5)]
    assert run.feed(*private) == []
    assert run.state.get("new_location", {}) == {}
    assert run.rules(sign_in(later(), BERLIN), sign_in(later(4), PARIS)) == []


def test_failed_sign_ins_and_other_actions_are_ignored() -> None:
    run = Run()
    assert run.rules(*history()) == []
    assert run.rules(sign_in(later(), PARIS, outcome="failure")) == []
    assert run.rules(sign_in(later(), PARIS, action="update")) == []
    assert run.state["new_location"]["c"] == ["DE"]


def test_sent_country_wins_over_the_ip() -> None:
    run = Run()
    assert run.feed(*history()) == []
    # The IP says Berlin, the producer says France: France it is.
    [alert] = run.feed(sign_in(later(), BERLIN, location={"country": "FR"}))
    assert "new country: FR" in alert.title
    # And the other way round: the IP says Paris, the producer says Germany.
    other = Run()
    [alert] = other.feed(*history(), sign_in(later(), PARIS, location={"country": "DE"}))
    assert "new network: AS3215" in alert.title  # Orange is new, Germany is not


def test_sent_location_without_ip() -> None:
    run = Run()
    located = [sign_in(T0 + timedelta(days=i), None, {"country": "DE"}) for i in range(3)]
    assert run.feed(*located) == []
    assert run.rules(sign_in(later(), None, {"country": "JP"})) == ["new_location"]


def test_seen_sets_are_bounded() -> None:
    run = Run({"new_location": {"remember": 3}})
    ips = [BERLIN, PARIS, NEW_YORK, HAMBURG, VPN, MUNICH]
    run.feed(*[sign_in(T0 + timedelta(days=i), ip) for i, ip in enumerate(ips * 3)])
    state = run.state["new_location"]
    assert len(state["c"]) <= 3
    assert len(state["k"]) <= 3
    assert state["c"][-1] == "DE"


def test_ignored_networks_are_neither_learnt_nor_alerted() -> None:
    run = Run({"new_location": {"ignored_networks": ["AS13335", "9.9.0.0/16"]}})
    assert run.rules(*history(), sign_in(later(), VPN), sign_in(later(4), "9.9.1.1")) == []
    assert "SG" not in run.state["new_location"]["c"]


# --- impossible travel ------------------------------------------------------------------


def test_berlin_to_new_york_in_an_hour_fires() -> None:
    run = Run()
    first = sign_in(T0, BERLIN)
    second = sign_in(T0 + timedelta(hours=1), NEW_YORK)
    alerts = [a for a in run.feed(first, second) if a.rule == "impossible_travel"]
    [alert] = alerts
    assert alert.severity is Severity.HIGH
    assert alert.mitre_technique == "T1078"
    assert "Berlin, DE -> New York, US" in alert.title
    km = great_circle_km(52.52, 13.405, 40.7128, -74.006)
    assert f"{km:,.0f} km" in alert.explanation
    assert "in 60.0 minutes" in alert.explanation
    assert f"an implied {km:,.0f} km/h" in alert.explanation
    assert "the limit is 900 km/h" in alert.explanation
    assert alert.evidence_event_ids == [first.event_id, second.event_id]
    assert (alert.window_start, alert.window_end) == (first.occurred_at, second.occurred_at)
    speed = next(o for o in alert.observations if o.metric == "travel_speed")
    assert speed.observed == pytest.approx(km, rel=1e-3)
    assert speed.baseline == 900


def test_plausible_trip_is_quiet() -> None:
    run = Run()
    assert great_circle_km(52.52, 13.405, 48.8566, 2.3522) == pytest.approx(878, abs=5)
    # Berlin -> Paris in 3 h: ~290 km/h, a flight.
    events = [sign_in(T0, BERLIN), sign_in(T0 + timedelta(hours=3), PARIS)]
    assert "impossible_travel" not in run.rules(*events)


def test_same_trip_too_fast_fires() -> None:
    run = Run()
    events = [sign_in(T0, BERLIN), sign_in(T0 + timedelta(minutes=30), PARIS)]
    assert "impossible_travel" in run.rules(*events)
    faster_allowed = Run({"impossible_travel": {"max_speed_kmh": 2000}})
    assert "impossible_travel" not in faster_allowed.rules(*events)


def test_short_hops_are_ignored() -> None:
    run = Run()
    assert run.rules(sign_in(T0, BERLIN), sign_in(T0, POTSDAM)) == []
    strict = Run({"impossible_travel": {"min_distance_km": 10}})
    assert strict.rules(sign_in(T0, BERLIN), sign_in(T0 + timedelta(seconds=30), POTSDAM)) == [
        "impossible_travel"
    ]


def test_equal_timestamps() -> None:
    run = Run()
    alerts = run.feed(sign_in(T0, BERLIN), sign_in(T0, PARIS))
    [alert] = [a for a in alerts if a.rule == "impossible_travel"]
    assert "at the same moment" in alert.explanation
    metrics = {o.metric: o.observed for o in alert.observations}
    assert "travel_speed" not in metrics
    assert metrics["elapsed"] == 0
    json.loads(alert.model_dump_json())  # no inf/NaN in the alert


def test_sent_coordinates_win_over_the_ip() -> None:
    run = Run()
    # Both IPs say Berlin, but the producer placed the second sign-in in Sydney.
    sydney = {"country": "AU", "city": "Sydney", "latitude": -33.87, "longitude": 151.21}
    events = [sign_in(T0, BERLIN), sign_in(T0 + timedelta(hours=2), BERLIN, sydney)]
    [alert] = [a for a in run.feed(*events) if a.rule == "impossible_travel"]
    assert "Berlin, DE -> Sydney, AU" in alert.title
    # The IP says New York, the producer says Berlin: no trip at all.
    quiet = Run()
    berlin = {"country": "DE", "city": "Berlin", "latitude": 52.52, "longitude": 13.4}
    events = [sign_in(T0, BERLIN), sign_in(T0 + timedelta(hours=1), NEW_YORK, berlin)]
    assert "impossible_travel" not in quiet.rules(*events)


def test_sent_country_elsewhere_drops_the_ip_coordinates() -> None:
    run = Run()
    events = [sign_in(T0, BERLIN), sign_in(T0 + timedelta(hours=1), NEW_YORK, {"country": "DE"})]
    assert "impossible_travel" not in run.rules(*events)


def test_private_ip_does_not_break_the_chain() -> None:
    run = Run()
    events = [
        sign_in(T0, BERLIN),
        sign_in(T0 + timedelta(minutes=10), "192.168.1.20"),
        sign_in(T0 + timedelta(minutes=40), NEW_YORK),
    ]
    assert run.rules(*events).count("impossible_travel") == 1


def test_out_of_order_events() -> None:
    run = Run()
    late = sign_in(T0 + timedelta(hours=5), BERLIN)
    early = sign_in(T0 + timedelta(hours=4, minutes=30), NEW_YORK)
    [alert] = [a for a in run.feed(late, early) if a.rule == "impossible_travel"]
    assert "New York, US -> Berlin, DE" in alert.title
    assert alert.window_start == early.occurred_at
    assert run.state["impossible_travel"]["p"][0] == int(late.occurred_at.timestamp() * 1000)


def test_state_is_small_and_alert_ids_replay() -> None:
    events = [sign_in(T0 + timedelta(hours=i), ip) for i, ip in enumerate([BERLIN, NEW_YORK] * 30)]
    first, second = Run(), Run()
    ids = [a.alert_id for a in first.feed(*events)]
    assert ids == [a.alert_id for a in second.feed(*events)]
    assert set(first.state["impossible_travel"]) == {"p"}
    assert len(json.dumps(first.state)) < 1500


# --- direct use, settings, registry ------------------------------------------------------


def test_direct_observe() -> None:
    detector = ImpossibleTravel(GeoResolver(TABLE))
    settings = ImpossibleTravelSettings()
    state: dict[str, Any] = {}
    assert detector.observe(sign_in(T0, BERLIN), state, settings, {}) == []
    state = json.loads(json.dumps(state))
    [finding] = detector.observe(sign_in(T0 + timedelta(hours=1), NEW_YORK), state, settings, {})
    assert finding.severity is Severity.HIGH

    new = NewLocation(GeoResolver(TABLE))
    nl_state: dict[str, Any] = {}
    for event in history():
        assert new.observe(event, nl_state, NewLocationSettings(), {}) == []
    assert len(new.observe(sign_in(later(), PARIS), nl_state, NewLocationSettings(), {})) == 1


def test_wants_only_successful_sign_ins_with_a_place() -> None:
    detector = NewLocation(GeoResolver(TABLE))
    assert detector.wants(sign_in(T0))
    assert not detector.wants(sign_in(T0, outcome="denied"))
    assert not detector.wants(sign_in(T0, action="sign_out"))
    assert not detector.wants(sign_in(T0, None))


@pytest.mark.parametrize(
    "section",
    [
        {"impossible_travel": {"max_speed_kmh": 0}},
        {"impossible_travel": {"max_sped_kmh": 500}},
        {"new_location": {"min_history": 0}},
        {"new_location": {"ignored_networks": ["ASX"]}},
        {"new_location": {"ignored_networks": ["10.0.0.0/33"]}},
    ],
)
def test_bad_settings_fail_at_start(section: dict[str, Any]) -> None:
    detectors: list[Detector[Any]] = [NewLocation(GeoResolver(TABLE)), ImpossibleTravel()]
    with pytest.raises(DetectorConfigError):
        config.build({"defaults": section}, detectors)


def test_ignored_networks_normalised() -> None:
    settings = NewLocationSettings(ignored_networks=[" as13335 ", "10.1.2.3/8"])
    assert settings.ignored_networks == ["AS13335", "10.0.0.0/8"]


def test_registered_and_sharing_one_resolver() -> None:
    detectors = default_detectors()
    geo = [d for d in detectors if isinstance(d, NewLocation | ImpossibleTravel)]
    assert {d.name for d in geo} == {"new_location", "impossible_travel"}
    assert geo[0].resolver is geo[1].resolver
    config.build({}, detectors)


def test_a_new_actor_in_a_place_their_colleagues_use_is_quiet() -> None:
    """Cold start: the tenant's places (as this partition sees them) carry a new actor."""
    run = Run()
    colleague: dict[str, Any] = {}
    for event in [
        sign_in(T0 + timedelta(days=i), ip, actor="usr_old")
        for i in range(5)
        for ip in (BERLIN, HAMBURG)
    ]:
        run.engine.process(event, colleague, Scope.ACTOR, run.tenant)
    # usr_1: three sign-ins from Berlin, then Hamburg (Versatel): new to them, not to the tenant.
    assert run.feed(*history(3, start=later(6))) == []
    assert run.rules(sign_in(later(10), HAMBURG)) == []
    # Paris is new to everyone: it alerts, and says the history is short.
    [alert] = run.feed(sign_in(later(11), PARIS))
    assert alert.rule == "new_location"
    assert "nor used by anyone else in the tenant" in alert.explanation


def test_an_established_actor_in_a_colleagues_place_still_alerts() -> None:
    run = Run({"new_location": {"established": 3}})
    colleague: dict[str, Any] = {}
    for event in [sign_in(T0, PARIS, actor="usr_old")]:
        run.engine.process(event, colleague, Scope.ACTOR, run.tenant)
    assert run.feed(*history(3, start=later(1))) == []
    [alert] = run.feed(sign_in(later(5), PARIS))
    assert "nor used" not in alert.explanation
