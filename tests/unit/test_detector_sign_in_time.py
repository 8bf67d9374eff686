"""Odd sign-in time: per-actor hour-of-week profile with a tenant prior, in local time."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from auditstream.detectors import config
from auditstream.detectors.base import Detector, Finding, Scope
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.registry import default_detectors
from auditstream.detectors.sign_in_time import (
    HOURS,
    OffHoursSignIn,
    SignInTimeSettings,
    usual_hours,
)
from auditstream.schemas.alert import Alert, Severity
from auditstream.schemas.event import AuditEvent

BERLIN = "Europe/Berlin"
DETECTOR = OffHoursSignIn()
DEFAULT = SignInTimeSettings()


def sign_in(
    local: datetime,
    actor: str = "usr_ann",
    zone: str = BERLIN,
    actor_zone: str | None = BERLIN,
    tenant: str = "acme",
    outcome: str = "success",
) -> AuditEvent:
    """A sign-in at ``local`` (naive) wall-clock time in ``zone``."""
    return AuditEvent(
        occurred_at=local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC),
        tenant_id=tenant,
        actor={"id": actor, "timezone": actor_zone},
        action="sign_in",
        resource={"type": "session", "id": "sess"},
        outcome=outcome,
    )


def days(start: date, count: int, weekends: bool = False) -> Iterator[date]:
    for i in range(count):
        day = start + timedelta(days=i)
        if weekends or day.weekday() < 5:
            yield day


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


def office_worker(
    actor: str, start: date, count: int, seed: int = 1, **kw: Any
) -> list[AuditEvent]:
    """Two to four sign-ins per weekday between 08:00 and 17:00."""
    rng = random.Random(seed)
    events = []
    for day in days(start, count):
        for hour in sorted(rng.sample(range(8, 17), rng.randint(2, 4))):
            events.append(sign_in(at(day, hour, rng.randrange(60)), actor, **kw))
    return events


def night_worker(actor: str, start: date, count: int, seed: int = 2) -> list[AuditEvent]:
    """Two sign-ins per night, between 21:00 and 02:00, weekends included."""
    rng = random.Random(seed)
    events = []
    for day in days(start, count, weekends=True):
        for hour in sorted(rng.sample([21, 22, 23, 24, 25], 2)):
            events.append(sign_in(at(day, 0, rng.randrange(60)) + timedelta(hours=hour), actor))
    return events


def by_time(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    return sorted(events, key=lambda e: e.occurred_at)


class Profiles:
    """Per-actor state and the tenant's, kept as JSON between events like the Faust table."""

    def __init__(self, settings: SignInTimeSettings = DEFAULT) -> None:
        self.settings = settings
        self.states: dict[str, str] = {}
        self.tenants: dict[str, str] = {}

    def feed(self, events: Sequence[AuditEvent]) -> list[tuple[AuditEvent, Finding]]:
        found = []
        for e in events:
            if not DETECTOR.wants(e):
                continue
            state = json.loads(self.states.get(e.actor.id, "{}"))
            tenant = json.loads(self.tenants.get(e.tenant_id, "{}"))
            found += [(e, f) for f in DETECTOR.observe(e, state, self.settings, tenant)]
            self.states[e.actor.id] = json.dumps(state)
            self.tenants[e.tenant_id] = json.dumps(tenant)
        return found

    def state(self, actor: str) -> dict[str, Any]:
        return dict(json.loads(self.states[actor]))


MONDAY = date(2026, 1, 5)


def office_tenant(profiles: Profiles, tenant: str = "acme") -> None:
    """Five office workers' four weeks, so the tenant prior says 'office hours'."""
    events = by_time(
        e
        for i in range(5)
        for e in office_worker(f"usr_office{i}", MONDAY, 28, seed=10 + i, tenant=tenant)
    )
    assert profiles.feed(events) == []


def test_office_worker_signing_in_at_3am_alerts_and_explains() -> None:
    profiles = Profiles()
    office_tenant(profiles)
    assert profiles.feed(office_worker("usr_ann", MONDAY, 28)) == []
    odd = sign_in(at(date(2026, 2, 3), 3, 12))  # a Tuesday
    [(_, finding)] = profiles.feed([odd])
    assert finding.severity is Severity.MEDIUM
    assert list(finding.evidence) == [odd.event_id]
    assert finding.window_start == odd.occurred_at
    probability = finding.observations[0]
    assert probability.metric == "sign_in_hour_probability"
    assert probability.observed < probability.baseline == DEFAULT.max_probability
    assert finding.observations[1].observed == 3
    text = finding.explanation
    assert "03:12 on Tue 2026-02-03 (Europe/Berlin, the actor's zone)" in text
    assert "usual hours are 08:00-17:00" in text
    assert "Confidence: high" in text
    assert f"{probability.observed:.2%}" in text
    assert "alert threshold of 1.00%" in text
    # A sign-in in office hours the next day is quiet.
    assert profiles.feed([sign_in(at(date(2026, 2, 4), 9, 5))]) == []


def test_night_shift_worker_with_usual_nights_is_quiet() -> None:
    profiles = Profiles()
    office_tenant(profiles)
    assert profiles.feed(night_worker("usr_nina", MONDAY, 28)) == []
    later = date(2026, 2, 9)
    nights = [at(later, 21, 40), at(later, 23, 55), at(later, 23, 0) + timedelta(hours=3)]
    assert profiles.feed([sign_in(t, "usr_nina") for t in nights]) == []
    # Before dawn is odd for her and for the tenant.
    [(_, finding)] = profiles.feed([sign_in(at(later + timedelta(days=1), 5, 30), "usr_nina")])
    assert "usual hours are 21:00-02:00" in finding.explanation


def test_quiet_until_min_evidence_then_low_confidence() -> None:
    history = office_worker("usr_ann", MONDAY, 14)
    odd = sign_in(at(date(2026, 2, 3), 3))
    short = Profiles()
    office_tenant(short)
    assert short.feed([*history[: DEFAULT.min_evidence - 1], odd]) == []
    enough = Profiles()
    office_tenant(enough)
    [(_, finding)] = enough.feed([*history[: DEFAULT.min_evidence], odd])
    assert finding.severity is Severity.LOW
    assert finding.extra["confidence"] == "low"
    assert "Confidence: low" in finding.explanation
    full = Profiles()
    office_tenant(full)
    [(_, finding)] = full.feed([*history[: DEFAULT.min_history], odd])
    assert finding.extra["confidence"] == "high"
    assert finding.severity is Severity.MEDIUM


def test_a_new_actor_who_signs_in_once_a_day_is_protected_in_the_first_week() -> None:
    """One sign-in a day, work all day: the days of activity count, with the tenant prior."""
    profiles = Profiles()
    office_tenant(profiles)
    week: list[AuditEvent] = []
    for day in days(date(2026, 2, 2), 3):
        week.append(sign_in(at(day, 8, 40), "usr_new"))
        week += [work(at(day, hour, 5), "usr_new") for hour in range(9, 17)]
    assert profiles.feed(week) == []
    [(_, finding)] = profiles.feed([sign_in(at(date(2026, 2, 5), 2, 50), "usr_new")])
    assert finding.extra["confidence"] in ("low", "medium")
    assert "3 active days" in finding.explanation or "active days" in finding.explanation
    # Their usual hour the same day is not odd.
    assert profiles.feed([sign_in(at(date(2026, 2, 6), 8, 45), "usr_new")]) == []


def placed(local: datetime, zone: str, where: dict[str, Any], actor: str = "usr_kai") -> AuditEvent:
    """A sign-in without the actor's zone (as real logs come), from a located place."""
    return AuditEvent(
        occurred_at=local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC),
        tenant_id="acme",
        actor={"id": actor},
        action="sign_in",
        resource={"type": "session", "id": "sess"},
        location=where,
    )


TOKYO = {"country": "JP", "city": "Tokyo", "latitude": 35.68, "longitude": 139.69}


def test_the_zone_of_a_remote_actor_is_inferred_from_their_sign_in_places() -> None:
    """A Tokyo employee of a Berlin tenant, whose events carry no zone: 09:00 Tokyo is
    01:00 in Berlin. Scored on the tenant's clock, every morning would alert."""
    profiles = Profiles()
    office_tenant(profiles)
    mornings = [
        placed(at(day, 9, 10 + i % 40), "Asia/Tokyo", TOKYO)
        for i, day in enumerate(days(MONDAY, 28))
    ]
    assert profiles.feed(mornings) == []
    assert profiles.state("usr_kai")["z"] == {"Asia/Tokyo": 20.0}  # weekdays
    # 03:00 in Tokyo is odd for them, and explained on their clock.
    [(_, finding)] = profiles.feed([placed(at(date(2026, 2, 3), 3, 0), "Asia/Tokyo", TOKYO)])
    assert "03:00 on Tue 2026-02-03 (Asia/Tokyo, inferred from their sign-in places)" in (
        finding.explanation
    )


def test_a_traveller_at_a_usual_hour_where_they_are_is_quiet() -> None:
    profiles = Profiles()
    office_tenant(profiles)
    berlin = {"country": "DE", "city": "Berlin", "latitude": 52.52, "longitude": 13.40}
    home = [placed(at(day, 8, 30), BERLIN, berlin) for day in days(MONDAY, 28)]
    assert profiles.feed(home) == []
    # In Tokyo: 09:00 there is 01:00 in Berlin: odd at home, usual where they are.
    assert profiles.feed([placed(at(date(2026, 2, 3), 9, 0), "Asia/Tokyo", TOKYO)]) == []
    # 03:00 in Tokyo (19:00 in Berlin) is odd there; 19:00 at home is odd too.
    [(_, finding)] = profiles.feed([placed(at(date(2026, 2, 4), 3, 0), "Asia/Tokyo", TOKYO)])
    assert "(Europe/Berlin, inferred from their sign-in places)" in finding.explanation


def test_failed_sign_ins_are_not_learned() -> None:
    assert not DETECTOR.wants(sign_in(at(MONDAY, 3), outcome="failure"))
    assert DETECTOR.wants(sign_in(at(MONDAY, 3)))


def test_weekend_sign_in_at_a_usual_hour_is_quiet_but_not_at_night() -> None:
    profiles = Profiles()
    assert profiles.feed(office_worker("usr_ann", MONDAY, 28)) == []
    saturday = date(2026, 2, 7)
    assert profiles.feed([sign_in(at(saturday, 10, 30))]) == []
    assert len(profiles.feed([sign_in(at(saturday, 2, 30))])) == 1


def strict_dst_settings(**kw: Any) -> SignInTimeSettings:
    """No smoothing and no prior: an hour's shift would alert, so the test can fail."""
    return SignInTimeSettings(smoothing_hours=0, prior_weight=0, min_history=7, **kw)


def eight_oclock_every_day(start: date, count: int, **kw: Any) -> list[AuditEvent]:
    rng = random.Random(3)
    return [sign_in(at(d, 8, rng.randrange(60)), **kw) for d in days(start, count, True)]


@pytest.mark.parametrize(
    ("start", "switch"),
    [(date(2026, 3, 9), date(2026, 3, 29)), (date(2025, 10, 6), date(2025, 10, 26))],
    ids=["spring-forward", "fall-back"],
)
def test_dst_change_keeps_the_local_hour(start: date, switch: date) -> None:
    events = eight_oclock_every_day(start, 42)
    assert any(e.occurred_at.date() == switch for e in events)
    profiles = Profiles(strict_dst_settings())
    assert profiles.feed(events) == []
    counts = profiles.state("usr_ann")["h"]
    assert sum(counts) > 0
    assert counts[8] + counts[HOURS + 8] == pytest.approx(sum(counts))
    # The same events read on UTC wall clocks shift by an hour on the switch day: alert.
    utc = Profiles(strict_dst_settings())
    naive = [
        e.model_copy(update={"actor": e.actor.model_copy(update={"timezone": None})})
        for e in events
    ]
    found = utc.feed(naive)
    assert found
    assert found[0][0].occurred_at.date() == switch


def test_tenant_time_zone_is_used_for_actors_without_one() -> None:
    events = eight_oclock_every_day(date(2026, 3, 9), 42, actor_zone=None)
    assert Profiles(strict_dst_settings(timezone=BERLIN)).feed(events) == []
    assert Profiles(strict_dst_settings(timezone="UTC")).feed(events) != []


def early_tenant() -> Profiles:
    """Five early-shift workers: the tenant prior says 05:00-08:00 is normal."""
    profiles = Profiles()
    rng = random.Random(5)
    early = by_time(
        sign_in(at(d, rng.choice([5, 6, 7]), rng.randrange(60)), f"usr_early{i}")
        for i in range(5)
        for d in days(MONDAY, 28)
    )
    assert profiles.feed(early) == []
    return profiles


def test_tenant_prior_covers_hours_a_thin_history_has_not_seen() -> None:
    early = early_tenant()
    office = Profiles()
    office_tenant(office)
    ann = [sign_in(at(d, h, 15)) for d in days(MONDAY, 14) for h in (9, 11)]
    assert len(ann) == DEFAULT.min_history
    six_am = sign_in(at(date(2026, 2, 3), 6, 10))
    # Where early starts are normal in the tenant, Ann's first 06:10 is not odd...
    assert early.feed([*ann, six_am]) == []
    # ...where nobody starts early, it is.
    assert len(office.feed([*ann, six_am])) == 1


def test_prior_weight_shrinks_as_history_grows() -> None:
    profiles = early_tenant()
    ann = [sign_in(at(d, h, 15)) for d in days(MONDAY, 140) for h in (9, 10, 11, 12)]
    assert profiles.feed(ann) == []
    # With 400 sign-ins of her own, the tenant's early starts no longer excuse hers.
    [(_, finding)] = profiles.feed([sign_in(at(date(2026, 6, 1), 6, 10))])
    weight = int(finding.explanation.split("prior carries ")[1].split("%")[0])
    assert 0 < weight <= 5


def test_profile_follows_a_change_of_shift() -> None:
    profiles = Profiles()
    assert profiles.feed(office_worker("usr_ann", MONDAY, 56)) == []
    first_night = date(2026, 3, 2)
    nights = [sign_in(at(d, h, 30)) for d in days(first_night, 21, weekends=True) for h in (22, 23)]
    found = profiles.feed(nights)
    assert found, "the first nights of the new shift are odd"
    last_odd = max(e.occurred_at for e, _ in found)
    assert last_odd < datetime.combine(first_night + timedelta(days=7), time(), UTC)


def test_state_is_fixed_size_and_json() -> None:
    profiles = Profiles()
    profiles.feed(office_worker("usr_ann", MONDAY, 700))
    state = profiles.state("usr_ann")
    assert set(state) == {"h", "n", "t", "c"}
    assert len(state["h"]) == 2 * HOURS
    assert state["c"] > 1000
    assert len(json.dumps(state)) < 1000
    tenant = json.loads(profiles.tenants["acme"])
    assert set(tenant) == {"h", "n", "t"}
    # Decay keeps the effective count near its steady state: about two half-lives' worth.
    assert state["n"] < 0.3 * state["c"]


def test_usual_hours_ranges() -> None:
    def counts(hours: dict[int, float]) -> list[float]:
        return [hours.get(h, 0.0) for h in range(HOURS)] + [0.0] * HOURS

    assert usual_hours(counts(dict.fromkeys(range(8, 17), 5.0))) == "08:00-17:00"
    assert usual_hours(counts(dict.fromkeys([21, 22, 23, 0, 1], 5.0))) == "21:00-02:00"
    split = counts({**dict.fromkeys([8, 9], 5.0), **dict.fromkeys([13, 14], 5.0)})
    assert usual_hours(split) == "08:00-10:00, 13:00-15:00"
    assert usual_hours([0.0] * 48) == "unknown"


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="weekend days"):
        SignInTimeSettings(weekend_days=[7])
    with pytest.raises(config.DetectorConfigError, match="min_histori"):
        config.build({"defaults": {"off_hours_sign_in": {"min_histori": 3}}}, [DETECTOR])


# --- through the engine ------------------------------------------------------------------


class Harness:
    def __init__(self, document: dict[str, Any]) -> None:
        detectors: list[Detector[Any]] = [OffHoursSignIn()]
        self.engine = DetectionEngine(detectors, config.build(document, detectors))
        self.state: dict[str, str] = {}

    def feed(self, events: Sequence[AuditEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        for e in events:
            if not self.engine.wants(e, Scope.ACTOR):
                continue
            key, tkey = f"{e.tenant_id}/{e.actor.id}", f"{e.tenant_id}/#tenant"
            state = json.loads(self.state.get(key, "{}"))
            shared = json.loads(self.state.get(tkey, "{}"))
            alerts += self.engine.process(e, state, Scope.ACTOR, shared)
            self.state[key], self.state[tkey] = json.dumps(state), json.dumps(shared)
        return alerts


def test_engine_alert_and_repeat_suppression() -> None:
    h = Harness({"defaults": {"timezone": BERLIN}})
    assert h.feed(office_worker("usr_ann", MONDAY, 28, actor_zone=None)) == []
    night = date(2026, 2, 3)
    [alert] = h.feed([sign_in(at(night, 3, m), actor_zone=None) for m in (0, 10, 20)])
    assert (alert.rule, alert.subject, alert.actor_id) == (
        "off_hours_sign_in",
        "usr_ann",
        "usr_ann",
    )
    assert (alert.mitre_technique, alert.mitre_name) == ("T1078", "Valid Accounts")
    assert "03:00 on Tue 2026-02-03 (Europe/Berlin, the tenant's zone)" in alert.explanation
    # Past the suppression time, another odd sign-in alerts again.
    assert len(h.feed([sign_in(at(night, 4, 30), actor_zone=None)])) == 1


def test_engine_per_tenant_min_evidence() -> None:
    h = Harness({"tenants": {"acme": {"off_hours_sign_in": {"min_evidence": 10}}}})
    for tenant in ("acme", "eager"):
        for i in range(3):  # a tenant prior that knows office hours
            h.feed(office_worker(f"usr_{i}", MONDAY, 28, seed=i, tenant=tenant))
        h.feed(office_worker("usr_ann", MONDAY, 3, tenant=tenant)[:6])
    odd = date(2026, 1, 20)
    assert h.feed([sign_in(at(odd, 3), tenant="acme")]) == []
    [alert] = h.feed([sign_in(at(odd, 3), tenant="eager")])
    assert alert.tenant_id == "eager"


def test_registered() -> None:
    [detector] = [d for d in default_detectors() if d.name == "off_hours_sign_in"]
    assert isinstance(detector, OffHoursSignIn)
    assert detector.scope is Scope.ACTOR


def work(local: datetime, actor: str = "usr_ann") -> AuditEvent:
    """Some ordinary action (not a sign-in) at ``local`` Berlin wall-clock time."""
    return AuditEvent(
        occurred_at=local.replace(tzinfo=ZoneInfo(BERLIN)).astimezone(UTC),
        tenant_id="acme",
        actor={"id": actor, "timezone": BERLIN},
        action="update",
        resource={"type": "task", "id": "t1"},
    )


def morning_sign_ins_all_day_work(start: date, count: int) -> list[AuditEvent]:
    """Signs in once at 08:xx, then works 08:00-17:00 (updates every hour)."""
    events: list[AuditEvent] = []
    for day in days(start, count):
        events.append(sign_in(at(day, 8, 5)))
        events += [work(at(day, hour, 30)) for hour in range(8, 17)]
    return events


@pytest.mark.parametrize(("learn", "alerts_at_14"), [(True, False), (False, True)])
def test_working_hours_learned_from_other_actions(learn: bool, alerts_at_14: bool) -> None:
    settings = SignInTimeSettings(learn_from_activity=learn, prior_weight=0)
    profiles = Profiles(settings)
    assert profiles.feed(morning_sign_ins_all_day_work(MONDAY, 35)) == []
    afternoon = sign_in(at(date(2026, 2, 10), 14, 20))  # a Tuesday, inside working hours
    assert bool(profiles.feed([afternoon])) is alerts_at_14
    night = sign_in(at(date(2026, 2, 11), 3, 10))  # never active at 03:00
    assert len(profiles.feed([night])) == 1


# --- working hours by presence -------------------------------------------------------------

NO_PRIOR = SignInTimeSettings(prior_weight=0)


def in_session(event: AuditEvent, session: str | None) -> AuditEvent:
    return event.model_copy(update={"session_id": session})


def busy_days(start: date, count: int) -> list[AuditEvent]:
    """Signs in at 08:05, then works 08:00-17:00, three actions an hour (27 a day)."""
    events: list[AuditEvent] = []
    for day in days(start, count):
        events.append(sign_in(at(day, 8, 5)))
        events += [work(at(day, hour, minute)) for hour in range(8, 17) for minute in (10, 30, 50)]
    return events


EVENING = [work(at(date(2026, 1, 14), 20, 40)), work(at(date(2026, 1, 14), 20, 50))]
"""One evening check-in from the phone (its app still signed in): two actions at 20:xx."""


def test_one_evening_check_in_makes_evenings_working_hours() -> None:
    history = by_time([*busy_days(MONDAY, 35), *EVENING])
    actions = [e for e in history if e.action != "sign_in"]
    # Two evening actions among hundreds of daytime ones: as a share of actions, evenings
    # stay below any threshold however often they recur. As a share of days, they do not.
    assert len(EVENING) / len(actions) < NO_PRIOR.max_probability
    profiles = Profiles(NO_PRIOR)
    assert profiles.feed(history) == []
    assert profiles.feed([sign_in(at(date(2026, 2, 10), 21, 10))]) == []
    # Near miss: two hours from the evening's activity is outside the one-hour window.
    [(_, finding)] = profiles.feed([sign_in(at(date(2026, 2, 11), 23, 10))])
    assert "active within an hour of 23:00 on 0.0% of their active days" in finding.explanation


def test_without_the_evening_an_evening_sign_in_alerts() -> None:
    profiles = Profiles(NO_PRIOR)
    assert profiles.feed(busy_days(MONDAY, 35)) == []
    assert len(profiles.feed([sign_in(at(date(2026, 2, 10), 21, 10))])) == 1


def test_working_day_share_threshold() -> None:
    # One evening in 26 active days is about 3.8%: a working hour at 2%, not at 5%.
    history = by_time([*busy_days(MONDAY, 35), *EVENING])
    evening = sign_in(at(date(2026, 2, 10), 21, 10))
    assert Profiles(NO_PRIOR).feed([*history, evening]) == []
    strict = Profiles(SignInTimeSettings(prior_weight=0, working_day_share=0.05))
    [(_, finding)] = strict.feed([*history, evening])
    assert "on 3.8% of their active days" in finding.explanation


def test_presence_counts_each_hour_of_each_day_once() -> None:
    profiles = Profiles()
    day = date(2026, 1, 6)
    profiles.feed([work(at(day, 9, m)) for m in range(50)] + [work(at(day, 14, 5))])
    activity = profiles.state("usr_ann")["a"]
    assert activity["c"] == 51
    assert activity["h"][9] == 1.0
    assert activity["h"][14] == 1.0
    assert sum(activity["h"]) == 2.0
    assert activity["n"] == 1.0
    # An action older than the last hour counted adds to the raw count only.
    profiles.feed([work(at(day, 10, 0))])
    activity = profiles.state("usr_ann")["a"]
    assert (activity["c"], sum(activity["h"]), activity["n"]) == (52, 2.0, 1.0)
    # The next day is a second active day (the first one decayed by a day's worth).
    profiles.feed([work(at(day + timedelta(days=1), 9, 0))])
    activity = profiles.state("usr_ann")["a"]
    assert activity["h"][9] == activity["n"] == pytest.approx(2.0, abs=0.01)
    assert activity["h"][9] < 2.0


def night_session(night: date, session: str | None, minute: int = 10) -> list[AuditEvent]:
    """An odd 03:05 sign-in and four actions from ``minute`` past the hour (03:xx or 04:xx)."""
    hour = 3 if minute < 60 else 4
    odd = in_session(sign_in(at(night, 3, 5)), session)
    return [odd, *(in_session(work(at(night, hour, minute % 60 + m)), session) for m in range(4))]


@pytest.mark.parametrize(
    ("session", "minute", "second_night_alerts"),
    [
        ("ses_attacker", 10, True),  # the odd session's actions teach nothing
        (None, 10, True),  # without session ids: the hour after the odd sign-in
        (None, 70, False),  # near miss: an hour later, the actions count again
    ],
)
def test_odd_session_does_not_make_the_next_night_normal(
    session: str | None, minute: int, second_night_alerts: bool
) -> None:
    profiles = Profiles(NO_PRIOR)
    assert profiles.feed(busy_days(MONDAY, 35)) == []
    first = date(2026, 2, 10)
    assert len(profiles.feed(night_session(first, session, minute))) == 1
    assert profiles.state("usr_ann")["o"]["s"] == session
    again = in_session(sign_in(at(first + timedelta(days=2), 3, 40)), "ses_other")
    assert bool(profiles.feed([again])) is second_night_alerts


def test_actions_in_another_session_still_teach() -> None:
    profiles = Profiles(NO_PRIOR)
    assert profiles.feed(busy_days(MONDAY, 35)) == []
    first = date(2026, 2, 10)
    odd, *browsing = night_session(first, "ses_attacker")
    assert len(profiles.feed([odd])) == 1
    # The same night's actions, but in another session (the user's own): they count.
    assert profiles.feed([in_session(e, "ses_user") for e in browsing]) == []
    assert profiles.feed([sign_in(at(first + timedelta(days=2), 3, 40))]) == []


def test_activity_state_is_fixed_size_and_json() -> None:
    profiles = Profiles()
    profiles.feed(busy_days(MONDAY, 700))
    profiles.feed(night_session(date(2027, 12, 7), "ses_attacker"))
    state = profiles.state("usr_ann")
    assert set(state) == {"h", "n", "t", "c", "a", "o"}
    activity = state["a"]
    assert set(activity) == {"h", "n", "c", "s", "t"}
    assert len(activity["h"]) == 2 * HOURS
    assert activity["c"] > 10_000
    # Decayed active days stay near their steady state (about 130 weekdays' worth), not 500.
    assert 50 < activity["n"] < 150
    assert len(json.dumps(state)) < 2000
