"""The simulator: the same seed gives the same events, labels tell the truth about them, each
scenario has the shape its detector looks for (or, for a look-alike, misses it on purpose)."""

from __future__ import annotations

import itertools
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.detectors import config as detector_config
from auditstream.detectors.geo import great_circle_km
from auditstream.detectors.registry import default_detectors
from auditstream.schemas.event import AuditEvent
from auditstream.simulation.events import SimEvent
from auditstream.simulation.labels import Kind, Label
from auditstream.simulation.org import Role, Shift, build_org
from auditstream.simulation.plan import Plan, PlanConfig, fit_activity
from auditstream.simulation.scenarios import ATTACKS, LOOKALIKES, ScenarioError
from auditstream.simulation.timeline import Timeline, at_local, local_hours

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SMALL = PlanConfig(
    tenants=2, users=14, seed=11, history_days=21, attack_days=5, attacks=1, lookalikes=1, end=END
)


@pytest.fixture(scope="module")
def plan() -> tuple[Plan, list[SimEvent]]:
    p = Plan(SMALL)
    return p, list(p.events())


def _by_scenario(events: list[SimEvent]) -> dict[str, list[SimEvent]]:
    out: dict[str, list[SimEvent]] = defaultdict(list)
    for e in events:
        if e.scenario is not None:
            out[e.scenario].append(e)
    return out


def _label(p: Plan, kind: str) -> Label:
    return next(lb for lb in p.labels.values() if lb.type == kind)


def _speed_kmh(a: SimEvent, b: SimEvent) -> float:
    la, lb = a.fields["location"], b.fields["location"]
    km = great_circle_km(la["latitude"], la["longitude"], lb["latitude"], lb["longitude"])
    hours = (b.at - a.at).total_seconds() / 3600
    return km / hours if hours > 0 else float("inf")


def _sign_ins(events: list[SimEvent], ok: bool = True) -> list[SimEvent]:
    action = "sign_in" if ok else "sign_in_failed"
    return [e for e in events if e.action == action]


def test_same_seed_same_events_and_labels() -> None:
    a, b = Plan(SMALL), Plan(SMALL)
    assert [lb.to_json() for lb in a.labels.values()] == [lb.to_json() for lb in b.labels.values()]
    first = [(e.at, e.fields) for e in a.events()]
    assert first == [(e.at, e.fields) for e in b.events()]
    other = Plan(PlanConfig(**{**SMALL.__dict__, "seed": 12}))
    assert [e.event_id for e in other.events()][:50] != [e for _, e in first[:50]]


def test_events_are_valid_ordered_and_inside_the_timeline(
    plan: tuple[Plan, list[SimEvent]],
) -> None:
    p, events = plan
    assert len(events) > 3000
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    assert all(p.timeline.start <= e.at < p.timeline.end for e in events)
    assert len({e.event_id for e in events}) == len(events)
    for e in events[::97]:  # every one would pass; a sample keeps the test fast
        AuditEvent.model_validate(e.fields)
    assert p.stats.events == len(events)
    assert p.stats.actor_days > 2 * 14 * 15  # two tenants of 14 people, most weekdays


def test_every_type_is_labelled_with_its_rules(plan: tuple[Plan, list[SimEvent]]) -> None:
    p, events = plan
    assert Counter(lb.type for lb in p.labels.values()) == {t: 1 for t in {**ATTACKS, **LOOKALIKES}}
    grouped = _by_scenario(events)
    for label in p.labels.values():
        mine = grouped[label.id]
        assert {e.event_id for e in mine} == set(label.event_ids)
        assert label.window_start == min(e.at for e in mine)
        assert label.window_end == max(e.at for e in mine)
        assert label.window_start >= p.timeline.attack_start
        if label.kind is Kind.ATTACK:
            assert label.expect == (ATTACKS[label.type].rule,)
            assert not label.forbid
        else:
            assert label.forbid == (LOOKALIKES[label.type].rule,)
            assert not label.expect
        subject = (
            {e.fields["ip"] for e in mine}
            if label.subject_kind == "ip"
            else {e.actor_id for e in mine}
        )
        assert subject == {label.subject}
        assert {e.tenant_id for e in mine} == {label.tenant_id}
        assert Label.from_json(label.to_json()) == label


def test_attack_shapes(plan: tuple[Plan, list[SimEvent]]) -> None:
    p, events = plan
    s = _by_scenario(events)
    deletes = [e for e in s[_label(p, "mass_deletion").id] if e.action == "delete"]
    assert len(deletes) >= 25
    assert deletes[24].at - deletes[0].at <= timedelta(minutes=10)

    exports = [e for e in s[_label(p, "mass_export").id] if e.action == "export"]
    assert len(exports) >= 25
    assert exports[24].at - exports[0].at <= timedelta(minutes=10)

    brute = s[_label(p, "brute_force").id]
    failures, success = _sign_ins(brute, ok=False), _sign_ins(brute)[0]
    assert len(failures) >= 5
    assert failures[-1].at - failures[0].at <= timedelta(minutes=10)
    assert timedelta(0) < success.at - failures[-1].at <= timedelta(minutes=10)

    spray = s[_label(p, "password_spraying").id]
    assert len({e.actor_id for e in spray}) >= 10
    assert len({e.fields["ip"] for e in spray}) == 1
    assert spray[-1].at - spray[0].at <= timedelta(minutes=30)
    assert all(e.fields["outcome"] == "failure" for e in spray)

    travel = _sign_ins(s[_label(p, "impossible_travel").id])
    assert len(travel) == 2
    assert _speed_kmh(*travel) > 900

    escalation = s[_label(p, "privilege_escalation").id]
    granted = [c["new"] for e in escalation for c in e.fields.get("changes", ())]
    assert any("admin" in str(v) or "owner" in str(v) for v in granted)

    odd = _sign_ins(s[_label(p, "off_hours_sign_in").id])[0]
    assert 1.0 <= local_hours(odd.at, odd.fields["actor"]["timezone"]) < 4.5


def test_off_hours_victims_have_history_to_learn_from(plan: tuple[Plan, list[SimEvent]]) -> None:
    p, events = plan
    label = _label(p, "off_hours_sign_in")
    before = [
        e
        for e in events
        if e.actor_id == label.subject
        and e.action == "sign_in"
        and e.fields["outcome"] == "success"
        and e.at < label.window_start
    ]
    assert len(before) >= 20  # the detector's min_history


def test_lookalike_shapes(plan: tuple[Plan, list[SimEvent]]) -> None:
    p, events = plan
    s = _by_scenario(events)
    org = {u.id: u for u in p.org.users}

    trip = _sign_ins(s[_label(p, "plausible_trip").id])
    assert len(trip) >= 3
    assert all(_speed_kmh(a, b) < 900 for a, b in itertools.pairwise(trip))
    assert trip[0].fields["location"] == trip[-1].fields["location"]  # back home

    night = _sign_ins(s[_label(p, "night_shift").id])[0]
    assert org[night.actor_id].shift is Shift.NIGHT
    assert 21.5 <= local_hours(night.at, night.fields["actor"]["timezone"]) < 23

    forgot = s[_label(p, "forgotten_password").id]
    assert 2 <= len(_sign_ins(forgot, ok=False)) <= 4
    assert len(_sign_ins(forgot)) == 1

    cleanup = s[_label(p, "planned_cleanup").id]
    assert len(cleanup) >= 40
    assert org[cleanup[0].actor_id].steward
    assert all(8 <= local_hours(e.at, e.fields["actor"]["timezone"]) < 18 for e in cleanup)

    month_end = s[_label(p, "month_end_export").id]
    assert 12 <= len(month_end) < 25


def test_cascades_share_a_correlation_id_and_name_their_parent(
    plan: tuple[Plan, list[SimEvent]],
) -> None:
    _, events = plan
    by_id = {e.event_id: e for e in events}
    children = [e for e in events if "parent_event_id" in e.fields]
    assert children, "the mix has cascades"
    for child in children:
        parent = by_id[str(child.fields["parent_event_id"])]
        assert parent.fields["correlation_id"] == child.fields["correlation_id"]
        assert parent.at < child.at
        assert parent.actor_id == child.actor_id
    renames = [
        e
        for e in children
        if e.fields["resource"]["type"] == "time_entry"
        and e.fields["changes"][0]["field"] == "project_name"
    ]
    assert renames
    assert all(c["old"] != c["new"] for e in renames for c in e.fields["changes"])


def test_background_has_before_and_after_values(plan: tuple[Plan, list[SimEvent]]) -> None:
    _, events = plan
    updates = [e for e in events if e.scenario is None and e.action in ("update", "status_change")]
    assert updates
    assert all(e.fields.get("changes") for e in updates)
    assert all(c["old"] != c["new"] for e in updates for c in e.fields["changes"])
    actions = Counter(e.action for e in events if e.scenario is None)
    for action in ("create", "update", "delete", "access", "sign_in", "sign_out", "export"):
        assert actions[action] > 0


def test_detector_config_is_valid_and_allows_the_stewards() -> None:
    p = Plan(SMALL)
    document: dict[str, Any] = tomllib.loads(p.detector_config())
    config = detector_config.build(document, default_detectors(), "simulated")
    for tenant in p.org.tenants:
        settings = config.settings(tenant.id, "mass_deletion")
        assert tenant.stewards
        assert settings.allowed_actors == [u.id for u in tenant.stewards]  # type: ignore[attr-defined]
        assert config.settings(tenant.id, "off_hours_sign_in").timezone == tenant.timezone


def test_org_has_night_workers_stewards_and_usual_places() -> None:
    org = build_org(3, 30, seed=1)
    for tenant in org.tenants:
        assert tenant.night_workers
        assert len(tenant.stewards) >= 2  # the admins, not the owner
        assert all(u.role is Role.ADMIN for u in tenant.stewards)
        offices = {u.office.ip for u in tenant.users}
        assert offices == {tenant.office_ip}  # one office NAT per tenant
        homes = [u.home.ip for u in tenant.users]
        assert len(set(homes)) == len(homes)
    assert build_org(3, 30, seed=1) == org


def test_fit_activity_sizes_the_plan_to_a_count() -> None:
    fitted = fit_activity(SMALL, 6000)
    total = sum(1 for _ in Plan(fitted).events())
    assert abs(total - 6000) < 600
    with pytest.raises(ScenarioError, match="too few"):
        fit_activity(SMALL, 100)


def test_too_many_scenarios_for_the_org_says_what_to_change() -> None:
    with pytest.raises(ScenarioError, match="raise --users or --attack-days"):
        Plan(PlanConfig(tenants=1, users=8, attacks=40, lookalikes=0, end=END, attack_days=2))


def test_timeline_wall_clock_hours_survive_daylight_saving() -> None:
    tz = "Europe/Berlin"
    # 2026-10-25: clocks go back; 08:30 stays 08:30 local on both sides.
    before = at_local(datetime(2026, 10, 23).date(), 8.5, tz)
    after = at_local(datetime(2026, 10, 26).date(), 8.5, tz)
    assert local_hours(before, tz) == local_hours(after, tz) == 8.5
    assert (after - before) == timedelta(days=3, hours=1)
    timeline = Timeline(END, history_days=3, attack_days=2)
    assert timeline.start == END - timedelta(days=5)
    assert all(timeline.attack_start <= at_local(d, 0, tz) for d in timeline.attack_dates(tz))
