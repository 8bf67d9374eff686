"""Attacks and benign look-alikes, each injected with its ground-truth label.

Attacks (the rule that must fire):

- ``mass_deletion``: an insider deletes 30-80 entities within minutes; or a data steward's
  account deletes in bulk at night, outside the hours the tenant allows clean-ups.
- ``off_hours_sign_in``: a day worker's account signs in at 01:00-04:30 their time.
- ``brute_force``: 6-15 failed sign-ins from an attacker's address within minutes, then a
  success (also a new country, and often impossible travel: tolerated).
- ``password_spraying``: one address fails to sign in to 12-30 accounts of a tenant.
- ``impossible_travel``: minutes after the user signed in at home, their account signs in
  from thousands of kilometres away.
- ``privilege_escalation``: a compromised account grants admin rights (to an account it
  just invited, or to itself).
- ``mass_export``: 30-70 exports within minutes, by an insider or after a sign-in from abroad.
- ``account_failures``: 12-40 failed sign-ins against one account within minutes, no success.
- ``source_failures``: one address fails 16-40 sign-ins for 1-3 real accounts and a few
  guessed names (``admin``, ``test``...) within minutes.
- ``low_and_slow``: one account, a failed sign-in every 20-50 minutes for 8-20 hours from
  changing addresses.
- ``bulk_deletion``: 5-8 "delete selected" requests of 20-40 items each within minutes.
- ``new_user_odd_hour``: a user with no history at all (they joined when the attack period
  began) works two or three ordinary days, signing in once a day; then their account signs
  in at 01:00-04:30 their time. Only the odd sign-in is labelled.

Benign look-alikes (the rule that must stay quiet):

- ``planned_cleanup`` (mass_deletion): a data steward deletes 40-150 archived entries in
  office hours, allowed by the tenant's detector config;
- ``plausible_trip`` (impossible_travel): a flight to another city, signing in on arrival
  and back home, never faster than a plane (a new country may alert: tolerated);
- ``night_shift`` (off_hours_sign_in): a night-shift worker signs in at 22:00 as always;
- ``forgotten_password`` (brute_force): two to four failures, then a success;
- ``month_end_export`` (mass_export): finance exports 12-20 invoices in a quarter hour;
- ``stale_password`` (slow_account_sign_in_failures): a phone at home retries an old password
  every 30-60 minutes all day, after the user signed in from there;
- ``project_cascade`` (mass_deletion): one or two projects deleted, each with its 20-45 tasks
  (one request each: a shared ``correlation_id``, the tasks naming the project as parent);
- ``new_user_first_week`` (off_hours_sign_in): the same first days of a new user, nothing odd;
- ``traveller_zone`` (off_hours_sign_in): a user abroad, at least five hours from home, signs
  in on two days at 08:00-10:00 *there* (the night at home), with the place in the event.

A scenario *claims* its user for its time span: their background sessions then are left
out (a traveller does not also sign in at home), and no two scenarios share a user at once.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from auditstream.simulation.activity import Claims
from auditstream.simulation.events import EventFactory, Session, SimEvent, change
from auditstream.simulation.labels import Kind, Label
from auditstream.simulation.org import (
    ATTACKER_AGENTS,
    ATTACKER_CITIES,
    TRAVEL_DESTINATIONS,
    City,
    Org,
    Place,
    Role,
    Tenant,
    User,
    attacker_ip,
)
from auditstream.simulation.registry import Registry
from auditstream.simulation.timeline import Timeline, at_local, local_hours, zone

GEO = ("new_location", "impossible_travel")
FAILED_ONLY = (
    "account_sign_in_failures",
    "source_sign_in_failures",
    "slow_account_sign_in_failures",
    "slow_source_sign_in_failures",
)
"""Failed-attempt rules: side effects of attacks made of failures (brute force, spraying)."""
ODD_HOUR = ("off_hours_sign_in",)
FLIGHT_KMH = 800.0
MARGIN = timedelta(hours=6)
"""No two scenarios use one user closer than this to each other."""


@dataclass(frozen=True)
class ScenarioType:
    name: str
    kind: Kind
    rule: str
    """Attacks: the rule that must fire. Look-alikes: the rule that must stay quiet."""
    summary: str


ATTACKS: dict[str, ScenarioType] = {
    t.name: t
    for t in (
        ScenarioType("mass_deletion", Kind.ATTACK, "mass_deletion", "bulk deletion in minutes"),
        ScenarioType(
            "off_hours_sign_in", Kind.ATTACK, "off_hours_sign_in", "sign-in at 01:00-04:30"
        ),
        ScenarioType("brute_force", Kind.ATTACK, "brute_force", "failures, then success"),
        ScenarioType(
            "password_spraying", Kind.ATTACK, "password_spraying", "one IP, many accounts"
        ),
        ScenarioType(
            "impossible_travel", Kind.ATTACK, "impossible_travel", "two places, no time between"
        ),
        ScenarioType(
            "privilege_escalation", Kind.ATTACK, "privilege_escalation", "admin rights granted"
        ),
        ScenarioType("mass_export", Kind.ATTACK, "mass_export", "bulk export in minutes"),
        ScenarioType(
            "account_failures", Kind.ATTACK, "account_sign_in_failures", "failures, no success"
        ),
        ScenarioType(
            "source_failures", Kind.ATTACK, "source_sign_in_failures", "one IP guessing names"
        ),
        ScenarioType(
            "low_and_slow", Kind.ATTACK, "slow_account_sign_in_failures", "failures all day"
        ),
        ScenarioType("bulk_deletion", Kind.ATTACK, "mass_deletion", "many big delete requests"),
        ScenarioType(
            "new_user_odd_hour",
            Kind.ATTACK,
            "off_hours_sign_in",
            "first week, then 01:00-04:30",
        ),
    )
}
LOOKALIKES: dict[str, ScenarioType] = {
    t.name: t
    for t in (
        ScenarioType("planned_cleanup", Kind.BENIGN, "mass_deletion", "allowed bulk clean-up"),
        ScenarioType("plausible_trip", Kind.BENIGN, "impossible_travel", "a real flight"),
        ScenarioType("night_shift", Kind.BENIGN, "off_hours_sign_in", "night worker at 22:00"),
        ScenarioType("forgotten_password", Kind.BENIGN, "brute_force", "2-4 failures, success"),
        ScenarioType("month_end_export", Kind.BENIGN, "mass_export", "12-20 invoice exports"),
        ScenarioType(
            "stale_password",
            Kind.BENIGN,
            "slow_account_sign_in_failures",
            "a phone retrying an old password",
        ),
        ScenarioType("project_cascade", Kind.BENIGN, "mass_deletion", "a project and its tasks"),
        ScenarioType(
            "new_user_first_week", Kind.BENIGN, "off_hours_sign_in", "a new user's first days"
        ),
        ScenarioType(
            "traveller_zone", Kind.BENIGN, "off_hours_sign_in", "working hours abroad, 5+ h off"
        ),
    )
}
TYPES: dict[str, ScenarioType] = {**ATTACKS, **LOOKALIKES}


class ScenarioError(ValueError):
    """The org or the timeline cannot host the scenarios asked for; says what to change."""


@dataclass
class Built:
    events: list[SimEvent]
    label: Label


@dataclass
class Context:
    """What scenario builders share: the org, time, randomness, registries and claims."""

    org: Org
    timeline: Timeline
    rng: random.Random
    factory: EventFactory
    registries: dict[str, Registry]
    claims: Claims
    used: dict[tuple[str, str], list[tuple[datetime, datetime]]] = field(default_factory=dict)
    attackers: int = 0

    def free(self, user: User, start: datetime, end: datetime) -> bool:
        if start < self.timeline.attack_start or end > self.timeline.end:
            return False
        return not any(
            s - MARGIN < end and start < e + MARGIN
            for s, e in self.used.get((user.tenant_id, user.id), ())
        )

    def reserve(self, user: User, start: datetime, end: datetime, claim: bool) -> None:
        self.used.setdefault((user.tenant_id, user.id), []).append((start, end))
        if claim:
            self.claims.add(user.tenant_id, user.id, start, end)

    def attacker(self, far_from: City | None = None) -> Place:
        """A fresh attacker address, in a city at least 2,500 km from ``far_from``."""
        ip = attacker_ip(self.attackers)
        self.attackers += 1
        cities = [c for c in ATTACKER_CITIES if far_from is None or c.km_to(far_from) >= 2500]
        city = self.rng.choice(cities or ATTACKER_CITIES)
        return Place(
            "attacker",
            ip,
            city,
            city.location(5, self.rng),
            "web",
            self.rng.choice(ATTACKER_AGENTS),
        )

    def weekdays(self, user: User) -> list[date]:
        return [d for d in self.timeline.attack_dates(user.timezone) if d.weekday() < 5]

    def label(
        self,
        sid: str,
        stype: ScenarioType,
        tenant_id: str,
        subject: str,
        events: list[SimEvent],
        description: str,
        *,
        subject_kind: str = "actor",
        tolerate: tuple[str, ...] = (),
    ) -> Built:
        events = [SimEvent(e.at, e.fields, sid) for e in events]
        return Built(
            events,
            Label(
                id=sid,
                type=stype.name,
                kind=stype.kind,
                tenant_id=tenant_id,
                subject=subject,
                subject_kind=subject_kind,
                window_start=min(e.at for e in events),
                window_end=max(e.at for e in events),
                expect=(stype.rule,) if stype.kind is Kind.ATTACK else (),
                tolerate=tuple(r for r in tolerate if r != stype.rule),
                forbid=(stype.rule,) if stype.kind is Kind.BENIGN else (),
                description=description,
                event_ids=tuple(e.event_id for e in events),
            ),
        )


def _spread(start: datetime, minutes: float, count: int, rng: random.Random) -> list[datetime]:
    """``count`` moments in ``[start, start + minutes)``, sorted."""
    return sorted(start + timedelta(seconds=rng.uniform(0, minutes * 60)) for _ in range(count))


def _sign_in(
    ctx: Context, user: User | dict[str, Any], tenant: str, at: datetime, s: Session
) -> SimEvent:
    return ctx.factory.make(
        user, "sign_in", at, {"type": "session", "id": s.id}, s, tenant_id=tenant
    )


def _failure(
    ctx: Context, user: User | dict[str, Any], tenant: str, at: datetime, s: Session
) -> SimEvent:
    return ctx.factory.make(
        user,
        "sign_in_failed",
        at,
        {"type": "session", "id": "-"},
        s,
        tenant_id=tenant,
        outcome="failure",
        metadata={"reason": "wrong_password"},
    )


def _browse(ctx: Context, user: User, start: datetime, s: Session, count: int) -> list[SimEvent]:
    reg = ctx.registries[user.tenant_id]
    out = []
    for at in _spread(start + timedelta(minutes=1), 30, count, ctx.rng):
        found = reg.pick("document", lambda d: not d.get("archived")) or reg.pick("project")
        if found is None:
            continue
        entity, values = found
        kind = "document" if entity.startswith("doc_") else "project"
        resource = {"type": kind, "id": entity, "name": values.get("title") or values.get("name")}
        out.append(ctx.factory.make(user, "access", at, resource, s))
    return out


def _pick(
    ctx: Context,
    candidates: list[User],
    window: Callable[[User, date], tuple[datetime, datetime] | None],
) -> tuple[User, date, datetime, datetime] | None:
    """A free user among ``candidates`` and a weekday of the attack period that fits."""
    users = list(candidates)
    ctx.rng.shuffle(users)
    for user in users:
        days = ctx.weekdays(user)
        ctx.rng.shuffle(days)
        for day in days:
            span = window(user, day)
            if span is not None and ctx.free(user, *span):
                return user, day, *span
    return None


def _work_hour(ctx: Context, user: User, low: float = 1.0, high: float = 6.0) -> float:
    return user.work_start + ctx.rng.uniform(low, high)


# Attacks ------------------------------------------------------------------------------------


def mass_deletion(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    reg = ctx.registries[tenant.id]
    stewards = tenant.stewards
    at_night = bool(stewards) and ctx.rng.random() < 0.35
    count = ctx.rng.randint(30, 80)
    minutes = ctx.rng.uniform(3, 8)
    if at_night:
        found = _pick(
            ctx,
            stewards,
            lambda u, d: _span(at_local(d, ctx.rng.uniform(22.5, 27.0), u.timezone), minutes + 5),
        )
    else:
        members = [u for u in tenant.day_workers if not u.is_admin]
        found = _pick(
            ctx, members, lambda u, d: _span(at_local(d, _work_hour(ctx, u), u.timezone), minutes)
        )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=False)
    out: list[SimEvent] = []
    session = ctx.factory.session(user, user.home if at_night else user.office, start)
    begin = start
    if at_night:
        out.append(_sign_in(ctx, user, tenant.id, start, session))
        begin = start + timedelta(minutes=ctx.rng.uniform(1, 4))
    victims: list[tuple[str, str, dict[str, Any]]] = []
    for kind, share in (("time_entry", 0.5), ("task", 0.3), ("document", 0.2)):
        victims += [
            (kind, e, v)
            for e, v in reg.take(kind, round(count * share) + 1, lambda v: not v.get("archived"))
        ]
    ctx.rng.shuffle(victims)
    for at, (kind, entity, values) in zip(
        _spread(begin, minutes, count, ctx.rng), victims, strict=False
    ):
        name = values.get("title") or values.get("description")
        out.append(
            ctx.factory.make(
                user,
                "delete",
                at,
                {"type": kind, "id": entity, "name": name},
                session,
                changes=[change("name", name, None)],
            )
        )
    who = "a data steward's account, at night" if at_night else "an insider"
    return ctx.label(
        sid,
        ATTACKS["mass_deletion"],
        tenant.id,
        user.id,
        out,
        f"{who}: {len(out) - int(at_night)} deletions in {minutes:.0f} min",
        tolerate=ODD_HOUR if at_night else (),
    )


def _span(start: datetime, minutes: float) -> tuple[datetime, datetime]:
    return start, start + timedelta(minutes=minutes)


def off_hours_sign_in(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    candidates = [u for u in tenant.day_workers if u.evening_rate == 0]
    found = _pick(
        ctx, candidates, lambda u, d: _span(at_local(d, ctx.rng.uniform(1.0, 4.5), u.timezone), 40)
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=True)
    session = ctx.factory.session(user, user.home, start)
    out = [_sign_in(ctx, user, tenant.id, start, session)]
    out += _browse(ctx, user, start, session, ctx.rng.randint(2, 6))
    hour = local_hours(start, user.timezone)
    return ctx.label(
        sid,
        ATTACKS["off_hours_sign_in"],
        tenant.id,
        user.id,
        out,
        f"sign-in from the usual home device at {int(hour):02d}:{int(hour % 1 * 60):02d} "
        "local time",
    )


def brute_force(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    failures = ctx.rng.randint(6, 15)
    minutes = ctx.rng.uniform(1, 6)
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(at_local(d, ctx.rng.uniform(0, 24), u.timezone), minutes + 3),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start - timedelta(minutes=30), end + timedelta(minutes=30), claim=True)
    attacker = ctx.attacker(user.home.city)
    session = ctx.factory.session(user, attacker, start)
    times = _spread(start, minutes, failures, ctx.rng)
    out = [_failure(ctx, user, tenant.id, at, session) for at in times]
    success = times[-1] + timedelta(seconds=ctx.rng.uniform(20, 120))
    out.append(_sign_in(ctx, user, tenant.id, success, session))
    out += _browse(ctx, user, success, session, ctx.rng.randint(1, 4))
    return ctx.label(
        sid,
        ATTACKS["brute_force"],
        tenant.id,
        user.id,
        out,
        f"{failures} failures in {minutes:.1f} min from {attacker.ip} "
        f"({attacker.city.name}), then success",
        tolerate=GEO + ODD_HOUR + FAILED_ONLY,
    )


def password_spraying(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    if len(tenant.users) < 12:
        return None
    wanted = ctx.rng.randint(12, min(30, len(tenant.users)))
    minutes = ctx.rng.uniform(5, 25)
    tz = tenant.timezone
    days = list(ctx.timeline.attack_dates(tz))
    ctx.rng.shuffle(days)
    for day in days:
        start = at_local(day, ctx.rng.uniform(0, 24), tz)
        end = start + timedelta(minutes=minutes + 1)
        free = [u for u in tenant.users if ctx.free(u, start, end)]
        if len(free) >= wanted:
            targets = ctx.rng.sample(free, wanted)
            break
    else:
        return None
    for user in targets:
        ctx.reserve(user, start, end, claim=False)
    attacker = ctx.attacker(tenant.hq)
    attempts = [
        (u, at)
        for u in targets
        for at in _spread(start, minutes, ctx.rng.choice([1, 1, 2]), ctx.rng)
    ]
    attempts.sort(key=lambda a: a[1])
    out = []
    for user, at in attempts:
        session = ctx.factory.session(user, attacker, at)
        out.append(_failure(ctx, user, tenant.id, at, session))
    return ctx.label(
        sid,
        ATTACKS["password_spraying"],
        tenant.id,
        attacker.ip,
        out,
        f"{attacker.ip} ({attacker.city.name}) tried {len(targets)} accounts in {minutes:.0f} min",
        subject_kind="ip",
        tolerate=FAILED_ONLY,
    )


def impossible_travel(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    gap = ctx.rng.uniform(10, 90)
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(
            at_local(d, u.work_start + ctx.rng.uniform(-0.3, 0.3), u.timezone), gap + 40
        ),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start - timedelta(hours=1), end + timedelta(hours=1), claim=True)
    place = user.office if ctx.rng.random() < user.office_share else user.home
    own = ctx.factory.session(user, place, start)
    out = [_sign_in(ctx, user, tenant.id, start, own)]
    out += _browse(ctx, user, start, own, ctx.rng.randint(1, 3))
    attacker = ctx.attacker(place.city)
    later = start + timedelta(minutes=gap)
    theirs = ctx.factory.session(user, attacker, later)
    out.append(_sign_in(ctx, user, tenant.id, later, theirs))
    out += _browse(ctx, user, later, theirs, ctx.rng.randint(2, 5))
    km = place.city.km_to(attacker.city)
    return ctx.label(
        sid,
        ATTACKS["impossible_travel"],
        tenant.id,
        user.id,
        out,
        f"signed in at {place.city.name}, then {gap:.0f} min later from "
        f"{attacker.city.name} ({km:,.0f} km)",
        tolerate=("new_location", *ODD_HOUR),
    )


def privilege_escalation(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    from_abroad = ctx.rng.random() < 0.5
    candidates = [u for u in tenant.day_workers if not u.is_admin]
    found = _pick(
        ctx, candidates, lambda u, d: _span(at_local(d, _work_hour(ctx, u), u.timezone), 20)
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=from_abroad)
    reg = ctx.registries[tenant.id]
    out = []
    if from_abroad:
        place = ctx.attacker(user.home.city)
        session = ctx.factory.session(user, place, start)
        out.append(_sign_in(ctx, user, tenant.id, start, session))
        mid = reg.new_id("mem")
        email = f"it.support{ctx.rng.randrange(10, 99)}@{tenant.id}-helpdesk.example"
        at = start + timedelta(minutes=ctx.rng.uniform(2, 8))
        out.append(
            ctx.factory.make(
                user,
                "invite",
                at,
                {"type": "membership", "id": mid, "name": email},
                session,
                changes=[change("role", None, "member")],
            )
        )
        out.append(
            ctx.factory.make(
                user,
                "role_change",
                at + timedelta(minutes=ctx.rng.uniform(1, 5)),
                {"type": "membership", "id": mid, "name": email},
                session,
                changes=[change("role", "member", "admin")],
            )
        )
        what = f"signed in from {place.city.name}, invited {email} and made it admin"
    else:
        session = ctx.factory.session(user, user.office if user.office_share else user.home, start)
        at = start + timedelta(minutes=ctx.rng.uniform(0, 10))
        out.append(
            ctx.factory.make(
                user,
                "permission_change",
                at,
                {"type": "membership", "id": f"mem_{user.id}", "name": user.email},
                session,
                changes=[change("permissions", ["read", "write"], ["read", "write", "owner"])],
            )
        )
        what = "granted their own membership owner permissions"
    return ctx.label(
        sid,
        ATTACKS["privilege_escalation"],
        tenant.id,
        user.id,
        out,
        what,
        tolerate=GEO + ODD_HOUR if from_abroad else (),
    )


def mass_export(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    from_abroad = ctx.rng.random() < 0.5
    count = ctx.rng.randint(30, 70)
    minutes = ctx.rng.uniform(3, 9)
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(at_local(d, _work_hour(ctx, u), u.timezone), minutes + 5),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=False)
    reg = ctx.registries[tenant.id]
    out = []
    if from_abroad:
        place = ctx.attacker(user.home.city)
        session = ctx.factory.session(user, place, start)
        out.append(_sign_in(ctx, user, tenant.id, start, session))
    else:
        place = user.office if ctx.rng.random() < user.office_share else user.home
        session = ctx.factory.session(user, place, start)
    pool = [("document", k, v["title"]) for k, v in reg.documents.items()]
    pool += [("invoice", k, v["number"]) for k, v in reg.invoices.items()]
    pool += [("contact", k, v["name"]) for k, v in reg.contacts.items()]
    chosen = ctx.rng.sample(pool, min(count, len(pool)))
    for at, (kind, entity, name) in zip(
        _spread(start + timedelta(minutes=1), minutes, len(chosen), ctx.rng), chosen, strict=True
    ):
        out.append(
            ctx.factory.make(
                user,
                "export",
                at,
                {"type": kind, "id": entity, "name": name},
                session,
                metadata={"format": "pdf" if kind != "contact" else "vcf"},
            )
        )
    who = f"after a sign-in from {place.city.name}" if from_abroad else "by an insider"
    return ctx.label(
        sid,
        ATTACKS["mass_export"],
        tenant.id,
        user.id,
        out,
        f"{len(chosen)} exports in {minutes:.0f} min {who}",
        tolerate=GEO + ODD_HOUR if from_abroad else (),
    )


# Benign look-alikes ---------------------------------------------------------------------------


def planned_cleanup(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    if not tenant.stewards:
        return None
    minutes = ctx.rng.uniform(5, 20)
    count = ctx.rng.randint(40, 150)
    found = _pick(
        ctx,
        tenant.stewards,
        lambda u, d: _span(at_local(d, ctx.rng.uniform(10.0, 16.0), u.timezone), minutes),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=False)
    reg = ctx.registries[tenant.id]
    victims = [
        ("time_entry", e, v) for e, v in reg.take("time_entry", count, lambda v: v.get("archived"))
    ]
    victims += [
        ("document", e, v) for e, v in reg.take("document", count // 5, lambda v: v.get("archived"))
    ]
    session = ctx.factory.session(user, user.office if user.office_share else user.home, start)
    out = []
    correlation = ctx.factory.correlation()
    for at, (kind, entity, values) in zip(
        _spread(start, minutes, len(victims), ctx.rng), victims, strict=True
    ):
        name = values.get("title") or values.get("description")
        out.append(
            ctx.factory.make(
                user,
                "delete",
                at,
                {"type": kind, "id": entity, "name": name},
                session,
                changes=[change("name", name, None)],
                correlation_id=correlation,
                metadata={"job": "archive_cleanup"},
            )
        )
    return ctx.label(
        sid,
        LOOKALIKES["planned_cleanup"],
        tenant.id,
        user.id,
        out,
        f"a data steward removes {len(out)} archived entries in office hours (allowed in config)",
    )


def _utc_offset_hours(tz: str, at: datetime) -> float:
    offset = at.astimezone(zone(tz)).utcoffset()
    return 0.0 if offset is None else offset.total_seconds() / 3600


def _in_hours(user: User, at: datetime) -> datetime:
    """``at``, or the start of the user's next working day if it falls outside their day."""
    hour = local_hours(at, user.timezone)
    if user.work_start <= hour <= user.work_start + user.work_hours - 1:
        return at
    day = at.astimezone(zone(user.timezone)).date()
    if hour > user.work_start:
        day += timedelta(days=1)
    return at_local(day, user.work_start + _jitter(at), user.timezone)


def _jitter(at: datetime) -> float:
    """A small, deterministic offset (from the moment itself) so arrivals don't all align."""
    return (int(at.timestamp()) % 1800) / 3600


def plausible_trip(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    users = [u for u in tenant.day_workers if u.evening_rate == 0]
    ctx.rng.shuffle(users)
    for user in users:
        home = user.home.city
        days = ctx.weekdays(user)
        ctx.rng.shuffle(days)
        for day in days:
            start = at_local(day, user.work_start, user.timezone)
            here = _utc_offset_hours(user.timezone, start)
            dests = [
                c
                for c in TRAVEL_DESTINATIONS
                if 300 <= c.km_to(home) <= 9000
                and abs(_utc_offset_hours(c.timezone, start) - here) <= 6
            ]
            if not dests:
                continue
            dest = ctx.rng.choice(dests)
            flight = timedelta(hours=dest.km_to(home) / FLIGHT_KMH + 3)
            arrive = _in_hours(user, start + flight)
            stay = at_local(
                arrive.astimezone(zone(user.timezone)).date() + timedelta(days=1),
                user.work_start + 0.2,
                user.timezone,
            )
            # A day at the destination if the attack period has room, else straight back.
            stops = [(arrive, True), (stay, True)]
            back = _in_hours(user, stay + flight)
            if not ctx.free(user, start - timedelta(hours=1), back + timedelta(hours=2)):
                stops = [(arrive, True)]
                back = _in_hours(user, arrive + flight)
            end = back + timedelta(hours=2)
            if ctx.free(user, start - timedelta(hours=1), end):
                break
        else:
            continue
        ctx.reserve(user, start - timedelta(hours=1), end, claim=True)
        abroad = Place(
            "travel",
            user.phone.ip,
            dest,
            dest.location(3, ctx.rng),
            "mobile",
            user.phone.user_agent,
        )
        out: list[SimEvent] = []
        visits = [(start, user.home), *((at, abroad) for at, _ in stops), (back, user.home)]
        for at, place in visits:
            session = ctx.factory.session(user, place, at)
            out.append(_sign_in(ctx, user, tenant.id, at, session))
            out += _browse(ctx, user, at, session, ctx.rng.randint(1, 4))
        km = dest.km_to(home)
        return ctx.label(
            sid,
            LOOKALIKES["plausible_trip"],
            tenant.id,
            user.id,
            out,
            f"trip {home.name} -> {dest.name} ({km:,.0f} km) and back, at flight speed at most",
            tolerate=("new_location",),
        )
    return None


def night_shift(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    found = _pick(
        ctx,
        tenant.night_workers,
        lambda u, d: _span(at_local(d, u.work_start + ctx.rng.uniform(-0.2, 0.3), u.timezone), 90),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start - timedelta(hours=1), end + timedelta(hours=4), claim=True)
    session = ctx.factory.session(user, user.office, start)
    out = [_sign_in(ctx, user, tenant.id, start, session)]
    out += _browse(ctx, user, start, session, ctx.rng.randint(2, 6))
    return ctx.label(
        sid,
        LOOKALIKES["night_shift"],
        tenant.id,
        user.id,
        out,
        "night-shift worker signs in at the start of their shift",
    )


def forgotten_password(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(at_local(d, u.work_start + ctx.rng.uniform(-0.2, 0.3), u.timezone), 15),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start - timedelta(minutes=30), end + timedelta(minutes=30), claim=True)
    place = user.office if ctx.rng.random() < user.office_share else user.home
    session = ctx.factory.session(user, place, start)
    tries = ctx.rng.randint(2, 4)
    times = _spread(start, ctx.rng.uniform(0.5, 3), tries, ctx.rng)
    out = [_failure(ctx, user, tenant.id, at, session) for at in times]
    success = times[-1] + timedelta(seconds=ctx.rng.uniform(30, 240))
    out.append(_sign_in(ctx, user, tenant.id, success, session))
    out += _browse(ctx, user, success, session, ctx.rng.randint(1, 4))
    return ctx.label(
        sid,
        LOOKALIKES["forgotten_password"],
        tenant.id,
        user.id,
        out,
        f"{tries} failures from the usual {place.kind}, then a password reset and success",
    )


def month_end_export(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    finance = [u for u in tenant.day_workers if u.role is Role.FINANCE]
    finance += [u for u in tenant.day_workers if u.role is Role.OWNER]  # owners close books too
    minutes = ctx.rng.uniform(10, 20)
    found = _pick(
        ctx, finance, lambda u, d: _span(at_local(d, _work_hour(ctx, u), u.timezone), minutes)
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=False)
    reg = ctx.registries[tenant.id]
    invoices = list(reg.invoices.items())
    chosen = ctx.rng.sample(invoices, min(len(invoices), ctx.rng.randint(12, 20)))
    place = user.office if ctx.rng.random() < user.office_share else user.home
    session = ctx.factory.session(user, place, start)
    out = [
        ctx.factory.make(
            user,
            "export",
            at,
            {"type": "invoice", "id": iid, "name": inv["number"]},
            session,
            metadata={"format": "pdf", "batch": "month_end"},
        )
        for at, (iid, inv) in zip(
            _spread(start, minutes, len(chosen), ctx.rng), chosen, strict=True
        )
    ]
    return ctx.label(
        sid,
        LOOKALIKES["month_end_export"],
        tenant.id,
        user.id,
        out,
        f"finance exports {len(out)} invoices for the month-end close",
    )


# Failures without success, and deletions by request ------------------------------------------


def account_failures(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    """An attacker guesses one account's password and never gets in."""
    failures = ctx.rng.randint(12, 40)
    minutes = ctx.rng.uniform(1, 8)
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(at_local(d, ctx.rng.uniform(0, 24), u.timezone), minutes + 1),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start - timedelta(minutes=30), end + timedelta(minutes=30), claim=True)
    attacker = ctx.attacker(user.home.city)
    session = ctx.factory.session(user, attacker, start)
    out = [
        _failure(ctx, user, tenant.id, at, session)
        for at in _spread(start, minutes, failures, ctx.rng)
    ]
    return ctx.label(
        sid,
        ATTACKS["account_failures"],
        tenant.id,
        user.id,
        out,
        f"{failures} failed sign-ins in {minutes:.1f} min from {attacker.ip}, no success",
        tolerate=FAILED_ONLY,
    )


GUESSED_NAMES = ("admin", "administrator", "test", "root", "support", "info", "sales", "backup")


def source_failures(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    """One address tries a few real accounts and guessed names, many times each."""
    minutes = ctx.rng.uniform(3, 9)
    tz = tenant.timezone
    days = list(ctx.timeline.attack_dates(tz))
    ctx.rng.shuffle(days)
    users = [u for u in tenant.users]
    for day in days:
        start = at_local(day, ctx.rng.uniform(0, 24), tz)
        end = start + timedelta(minutes=minutes + 1)
        real = [u for u in users if ctx.free(u, start, end)]
        if len(real) >= 3:
            break
    else:
        return None
    chosen = ctx.rng.sample(real, ctx.rng.randint(1, 3))
    for user in chosen:
        ctx.reserve(user, start, end, claim=False)
    targets: list[User | dict[str, Any]] = list(chosen)
    names = ctx.rng.sample(GUESSED_NAMES, ctx.rng.randint(2, 5))
    targets += [{"id": name, "type": "member"} for name in names]
    attacker = ctx.attacker(tenant.hq)
    attempts = ctx.rng.randint(16, 40)
    out = []
    for i, at in enumerate(_spread(start, minutes, attempts, ctx.rng)):
        who = targets[i % len(targets)]
        placeholder = who if isinstance(who, User) else users[0]
        session = ctx.factory.session(placeholder, attacker, at)
        out.append(_failure(ctx, who, tenant.id, at, session))
    return ctx.label(
        sid,
        ATTACKS["source_failures"],
        tenant.id,
        attacker.ip,
        out,
        f"{attacker.ip} failed {attempts} sign-ins for {len(targets)} names in {minutes:.0f} min",
        subject_kind="ip",
        tolerate=FAILED_ONLY,
    )


def low_and_slow(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    """Password guessing against one account, a try every 20-50 minutes from changing
    addresses, for 8-20 hours: no burst, no success."""
    hours = ctx.rng.uniform(8, 20)
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(at_local(d, ctx.rng.uniform(0, 12), u.timezone), hours * 60),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=True)
    out = []
    at = start
    attacker = ctx.attacker(user.home.city)
    while at < end:
        if ctx.rng.random() < 0.3:
            attacker = ctx.attacker(user.home.city)
        session = ctx.factory.session(user, attacker, at)
        out.append(_failure(ctx, user, tenant.id, at, session))
        at += timedelta(minutes=ctx.rng.uniform(20, 50))
    return ctx.label(
        sid,
        ATTACKS["low_and_slow"],
        tenant.id,
        user.id,
        out,
        f"{len(out)} failed sign-ins over {hours:.0f} h from changing addresses, no success",
        tolerate=FAILED_ONLY,
    )


def _delete_request(
    ctx: Context,
    user: User,
    session: Session,
    at: datetime,
    items: list[tuple[str, str, dict[str, Any]]],
    root: tuple[str, str, dict[str, Any]] | None,
) -> list[SimEvent]:
    """One request deleting ``root`` (its cause) and ``items``, all sharing a correlation id."""
    correlation = ctx.factory.correlation()
    out: list[SimEvent] = []
    parent: uuid.UUID | None = None
    if root is not None:
        kind, entity, values = root
        name = values.get("name") or values.get("title")
        event = ctx.factory.make(
            user,
            "delete",
            at,
            {"type": kind, "id": entity, "name": name},
            session,
            changes=[change("name", name, None)],
            correlation_id=correlation,
        )
        parent = uuid.UUID(event.event_id)
        out.append(event)
    for i, (kind, entity, values) in enumerate(items, 1):
        name = values.get("title") or values.get("description") or values.get("name")
        out.append(
            ctx.factory.make(
                user,
                "delete",
                at + timedelta(milliseconds=20 * i),
                {"type": kind, "id": entity, "name": name},
                session,
                changes=[change("name", name, None)],
                correlation_id=correlation,
                parent=parent,
            )
        )
    return out


def bulk_deletion(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    """An insider deletes in bulk: 5-8 "delete selected" requests of 20-40 items each."""
    requests = ctx.rng.randint(5, 8)
    minutes = ctx.rng.uniform(3, 9)
    members = [u for u in tenant.day_workers if not u.is_admin]
    found = _pick(
        ctx, members, lambda u, d: _span(at_local(d, _work_hour(ctx, u), u.timezone), minutes)
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=False)
    reg = ctx.registries[tenant.id]
    session = ctx.factory.session(user, user.office, start)
    out: list[SimEvent] = []
    for at in _spread(start, minutes, requests, ctx.rng):
        kind = ctx.rng.choice(["document", "time_entry", "task"])
        size = ctx.rng.randint(20, 40)
        items = [(kind, e, v) for e, v in reg.take(kind, size, lambda v: not v.get("archived"))]
        while len(items) < size:  # the registry ran short: the request still deletes its items
            items.append((kind, f"{kind}_bulk_{len(out)}_{len(items)}", {"title": kind}))
        out += _delete_request(ctx, user, session, at, items, None)
    return ctx.label(
        sid,
        ATTACKS["bulk_deletion"],
        tenant.id,
        user.id,
        out,
        f"{requests} bulk delete requests, {len(out)} items in {minutes:.0f} min",
    )


def project_cascade(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    """A member deletes one or two finished projects; each takes its 20-45 tasks with it."""
    members = list(tenant.day_workers)
    found = _pick(ctx, members, lambda u, d: _span(at_local(d, _work_hour(ctx, u), u.timezone), 10))
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=False)
    reg = ctx.registries[tenant.id]
    session = ctx.factory.session(user, user.office, start)
    out: list[SimEvent] = []
    for at in _spread(start, 10, ctx.rng.randint(1, 2), ctx.rng):
        project = reg.pick("project")
        if project is None:
            return None
        pid, values = project
        taken = reg.take("task", 45, lambda v, pid=pid: v.get("project") == pid)
        tasks = [("task", e, v) for e, v in taken]
        while len(tasks) < 20:  # a project this org's registry made small: its tasks still go
            tasks.append(("task", f"{pid}_t{len(tasks)}", {"title": f"task {len(tasks)}"}))
        tasks = tasks[: ctx.rng.randint(20, 45)]
        out += _delete_request(ctx, user, session, at, tasks, ("project", pid, values))
    return ctx.label(
        sid,
        LOOKALIKES["project_cascade"],
        tenant.id,
        user.id,
        out,
        f"{len(out)} deletions: project(s) deleted with their tasks (one request each)",
    )


def stale_password(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    """A phone at home keeps an old password: after the user signs in there, it retries
    every 30-60 minutes until evening."""
    found = _pick(
        ctx,
        tenant.day_workers,
        lambda u, d: _span(at_local(d, u.work_start - 1, u.timezone), 14 * 60),
    )
    if found is None:
        return None
    user, _, start, end = found
    ctx.reserve(user, start, end, claim=True)
    session = ctx.factory.session(user, user.home, start)
    out = [_sign_in(ctx, user, tenant.id, start, session)]
    at = start + timedelta(minutes=5)
    while at < end:
        out.append(_failure(ctx, user, tenant.id, at, session))
        at += timedelta(minutes=ctx.rng.uniform(30, 60))
    return ctx.label(
        sid,
        LOOKALIKES["stale_password"],
        tenant.id,
        user.id,
        out,
        f"{len(out) - 1} failures all day from home, where the user signed in",
        tolerate=("account_sign_in_failures",),
    )


# A new user's first week; a traveller in another zone ---------------------------------------


def _first_days(
    ctx: Context, tenant: Tenant, days: int
) -> tuple[User, list[datetime], list[SimEvent]] | None:
    """A day worker with no history (claimed from the timeline's start) and ``days`` ordinary
    weekdays: one sign-in at the start of work, then work through the day."""
    # Members: owners, finance and admins are kept for the scenarios only they can play.
    users = [
        u
        for u in tenant.day_workers
        if u.evening_rate == 0 and u.role in (Role.MEMBER, Role.MANAGER) and not u.is_admin
    ]
    ctx.rng.shuffle(users)
    for user in users:
        weekdays = ctx.weekdays(user)
        if len(weekdays) < days:
            continue
        dates = weekdays[:days]
        starts = [
            at_local(d, user.work_start + ctx.rng.uniform(0, 0.4), user.timezone) for d in dates
        ]
        end = starts[-1] + timedelta(hours=12)
        if not ctx.free(user, ctx.timeline.attack_start, end):
            continue
        # Theirs for the whole run (no other scenario makes them a long-standing user);
        # background work starts once their scenario ends.
        ctx.used.setdefault((user.tenant_id, user.id), []).append(
            (ctx.timeline.start, ctx.timeline.end)
        )
        ctx.claims.add(user.tenant_id, user.id, ctx.timeline.start, end)
        out: list[SimEvent] = []
        for start in starts:
            session = ctx.factory.session(
                user, user.office if user.office_share else user.home, start
            )
            out.append(_sign_in(ctx, user, tenant.id, start, session))
            for hour in range(1, int(user.work_hours)):
                out += _browse(ctx, user, start + timedelta(hours=hour - 1), session, 2)
        return user, starts, out
    return None


def new_user_odd_hour(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    found = _first_days(ctx, tenant, ctx.rng.randint(3, 4))
    if found is None:
        return None
    user, starts, routine = found
    # Before dawn on their last day: after two or three ordinary days.
    night = at_local(
        starts[-1].astimezone(zone(user.timezone)).date(), ctx.rng.uniform(1.0, 4.5), user.timezone
    )
    session = ctx.factory.session(user, user.home, night)
    odd = [_sign_in(ctx, user, tenant.id, night, session)]
    odd += _browse(ctx, user, night, session, ctx.rng.randint(2, 5))
    hour = local_hours(night, user.timezone)
    built = ctx.label(
        sid,
        ATTACKS["new_user_odd_hour"],
        tenant.id,
        user.id,
        odd,
        f"a user of {len(starts) - 1} days signs in at {int(hour):02d}:{int(hour % 1 * 60):02d} "
        "their time",
        tolerate=GEO,
    )
    built.events += routine  # their first days: background, unlabelled
    return built


def new_user_first_week(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    found = _first_days(ctx, tenant, ctx.rng.randint(3, 4))
    if found is None:
        return None
    user, _, routine = found
    return ctx.label(
        sid,
        LOOKALIKES["new_user_first_week"],
        tenant.id,
        user.id,
        routine,
        f"a new user's first {sum(1 for e in routine if e.action == 'sign_in')} days",
        tolerate=GEO,
    )


def traveller_zone(ctx: Context, sid: str, tenant: Tenant) -> Built | None:
    users = [u for u in tenant.day_workers if u.evening_rate == 0]
    ctx.rng.shuffle(users)
    far = [*TRAVEL_DESTINATIONS, *ATTACKER_CITIES]
    for user in users:
        days = ctx.weekdays(user)
        ctx.rng.shuffle(days)
        for day in days:
            dests = [
                c
                for c in far
                if abs(
                    _utc_offset_hours(c.timezone, at_local(day, 12, user.timezone))
                    - _utc_offset_hours(user.timezone, at_local(day, 12, user.timezone))
                )
                >= 5
            ]
            if not dests:
                continue
            dest = ctx.rng.choice(dests)
            first = at_local(day, ctx.rng.uniform(8.0, 10.0), dest.timezone)
            second = at_local(day + timedelta(days=1), ctx.rng.uniform(8.0, 10.0), dest.timezone)
            # Flights there and back: no sign-in at home closer than a plane allows.
            flight = timedelta(hours=dest.km_to(user.home.city) / FLIGHT_KMH + 4)
            start, end = first - flight, second + flight
            if not ctx.free(user, start, end):
                continue
            ctx.reserve(user, start, end, claim=True)
            abroad = Place(
                "travel",
                user.phone.ip,
                dest,
                dest.location(3, ctx.rng),
                "mobile",
                user.phone.user_agent,
            )
            out: list[SimEvent] = []
            for at in (first, second):
                session = ctx.factory.session(user, abroad, at)
                out.append(_sign_in(ctx, user, tenant.id, at, session))
                out += _browse(ctx, user, at, session, ctx.rng.randint(2, 5))
            return ctx.label(
                sid,
                LOOKALIKES["traveller_zone"],
                tenant.id,
                user.id,
                out,
                f"in {dest.name} ({dest.timezone}), signing in at 08:00-10:00 there",
                tolerate=GEO,
            )
    return None


BUILDERS: dict[str, Callable[[Context, str, Tenant], Built | None]] = {
    "mass_deletion": mass_deletion,
    "off_hours_sign_in": off_hours_sign_in,
    "brute_force": brute_force,
    "password_spraying": password_spraying,
    "impossible_travel": impossible_travel,
    "privilege_escalation": privilege_escalation,
    "mass_export": mass_export,
    "planned_cleanup": planned_cleanup,
    "plausible_trip": plausible_trip,
    "night_shift": night_shift,
    "forgotten_password": forgotten_password,
    "month_end_export": month_end_export,
    "account_failures": account_failures,
    "source_failures": source_failures,
    "low_and_slow": low_and_slow,
    "bulk_deletion": bulk_deletion,
    "project_cascade": project_cascade,
    "stale_password": stale_password,
    "new_user_odd_hour": new_user_odd_hour,
    "new_user_first_week": new_user_first_week,
    "traveller_zone": traveller_zone,
}


LONG = ("new_user_odd_hour", "new_user_first_week", "traveller_zone")
"""Scenario types that need a user for days (no history at all; two days abroad)."""


def inject(ctx: Context, counts: dict[str, int]) -> list[Built]:
    """``counts[type]`` scenarios of each type, spread over the tenants in turn."""
    unknown = sorted(set(counts) - set(BUILDERS))
    if unknown:
        raise ScenarioError(f"unknown scenario type(s) {unknown}; known: {', '.join(BUILDERS)}")
    out: list[Built] = []
    tenants = list(ctx.org.tenants)
    # Scenarios that need a user free for days are placed first, while users are free.
    ordered = sorted(counts.items(), key=lambda item: item[0] not in LONG)
    for name, count in ordered:
        made = 0
        attempts = 0
        while made < count and attempts < count * len(tenants) * 3 + 3:
            tenant = tenants[attempts % len(tenants)]
            attempts += 1
            built = BUILDERS[name](ctx, f"{name}-{made + 1:03d}", tenant)
            if built is not None:
                out.append(built)
                made += 1
        if made < count:
            raise ScenarioError(
                f"could place only {made} of {count} {name} scenarios: the org or the attack "
                f"period is too small ({_needs(name)}); raise --users or --attack-days, or "
                f"lower --attacks / --lookalikes"
            )
    return out


def _needs(name: str) -> str:
    needs = {
        "password_spraying": "needs a tenant of at least 12 users",
        "night_shift": "needs night-shift workers: one in 15 users, from 8 users per tenant",
        "planned_cleanup": "the admins are the data stewards: one clean-up each every few days",
        "plausible_trip": "needs three free weekdays in the attack period",
    }
    return needs.get(name, "each scenario needs a free user on a weekday of the attack period")
