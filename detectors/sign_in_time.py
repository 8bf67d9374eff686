"""Odd sign-in time: a successful sign-in at an hour that is rare for this actor.

The model, per actor, learned online from the actor's successful sign-ins:

- **Histogram.** 48 counters: local hour of day (0-23) x day type (weekday, weekend), in the
  actor's time zone (``actor.timezone``), else the tenant's (``settings.timezone``), else UTC.
  Wall-clock hours come from the IANA database (``timeutil.local_time``), so someone who
  always signs in at 08:xx stays in the 08 bucket across daylight-saving changes.
- **Decay.** Counters decay with a half-life of ``half_life_days`` of *event* time, so the
  profile follows a real change of habits (a new shift) while keeping its shape meanwhile.
  State is fixed-size: 48 floats, the decayed total, a raw count and the last event time.
- **Smoothing.** Hours are circular: a bucket's count is spread over its neighbours with
  weights 1, 1/2, 1/4, ... up to ``smoothing_hours`` away, so 07:50 is not odd for someone
  whose sign-ins are at 08:00-09:00, and 23:00 and 00:00 are neighbours.
- **Weekday / weekend.** The day type's own hour distribution, shrunk towards the actor's
  all-days distribution with ``day_type_pseudo_count`` pseudo sign-ins, so a first Saturday
  at a usual hour is not odd, while a weekend with its own habits is learned as such.
- **Tenant prior.** The same histogram over every actor's sign-ins in the tenant (as this
  partition sees it: a sample of the tenant's actors), shrunk towards uniform with 24
  pseudo sign-ins. The actor's probability is blended with it:
  ``p = (n * p_actor + prior_weight * p_tenant) / (n + prior_weight)``, n being the actor's
  decayed sign-in count, so the prior's weight shrinks as the actor's history grows.

- **Working hours.** With ``learn_from_activity`` the actor's other actions (whatever they
  do, not only sign-ins) teach the hours they work in. A sign-in in an hour the actor
  routinely works in is not odd even if they rarely *sign in* then (a phone session at 14:00
  for someone whose web sign-in is at 08:00; an evening check-in for someone who checks in
  some evenings): once ``min_activity`` actions are known, a sign-in whose probability is
  below the threshold still does not alert when the actor was active within an hour of it
  (any day type) on at least ``working_day_share`` of their active days. Activity is
  counted by *presence*, once per local hour per day, not per action: a working day yields
  dozens of actions, an evening check-in two or three, so a share of actions would make
  every short session look rare however often it recurs. State: 48 decayed hour-days, the
  decayed count of active days, the raw action count and the last hour counted.
  Actions in the session of an odd sign-in (same ``session_id``; without one, the hour after
  it) teach nothing, so an attacker's night session does not make the next night normal.
  An attacker's 03:00 sign-in for a 9-to-5 actor is rare in both.

- **Whose clock.** The actor's zone is ``actor.timezone`` when the source sends it; else the
  zone learned from where they sign in (the place, sent or from IP geolocation, mapped to
  its IANA zone through ``zone1970.tab``; the zone of most of their sign-ins, so one sign-in
  from abroad does not move it); else the tenant's ``timezone``. Hours, the tenant prior
  and explanations are all in that zone. A sign-in from a place in another zone (a
  traveller) alerts only when its hour is odd on the local clock there too.
- **Cold start.** An actor is scored once they have ``min_evidence`` sign-ins plus days of
  other activity (not ``min_history`` sign-ins: someone who signs in once a day would wait a
  month). Until then, and while their history is short, the tenant prior carries most of
  the estimate; the days they were active count as pseudo sign-ins at the hours they
  worked (fading out as their own sign-ins reach ``min_history``). The alert states its
  confidence (low / medium / high) from the evidence, and a
  low-confidence alert is low severity. Until ``min_history`` sign-ins, an hour must also be
  odd for the tenant's actors (on their own clocks), with a weight that fades as the actor's
  own sign-ins accumulate: a new actor's first evening check-in is not an alert where evening
  check-ins are common, a 03:00 sign-in is.

A sign-in alerts when ``p`` of its local hour is below ``max_probability``, once the actor
has enough evidence (``min_evidence``; ``min_history`` sign-ins make it high confidence).
It is scored before it is learned; an odd sign-in is
learned at ``odd_learning_weight`` only, so an attacker's repeated 03:00 sign-ins do not
become normal at once, while a real change of shift becomes normal within a few days.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from auditstream.detectors.base import Detector, DetectorSettings, Finding
from auditstream.detectors.geoip import GeoResolver, merge
from auditstream.detectors.timeutil import millis, zone, zone_at
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import Observation, Severity
from auditstream.schemas.event import AuditEvent, Outcome

HOURS = 24
WEEKDAY, WEEKEND = 0, 1
_DAY = 86_400_000
_HOUR = 3_600_000
_TENANT_PSEUDO = 24.0
_PEER_PSEUDO = 4.0
"""The peers' own hours, lightly shrunk: what a new actor's hour is checked against."""


class SignInTimeSettings(DetectorSettings):
    min_history: int = Field(
        default=20, ge=1, description="Successful sign-ins that make a profile high-confidence"
    )
    min_evidence: int = Field(
        default=4,
        ge=1,
        description="Sign-ins plus days of other activity before the actor is scored at all",
    )
    activity_weight: float = Field(
        default=1.0,
        ge=0,
        description="Pseudo sign-ins per active day, at the hours the actor worked (max 10 days)",
    )
    max_probability: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Alert when the local hour's probability is below this (uniform: 1/24)",
    )
    smoothing_hours: int = Field(
        default=2, ge=0, le=6, description="Neighbouring hours each side that share a count"
    )
    prior_weight: float = Field(
        default=10.0, ge=0, description="Pseudo sign-ins given to the tenant-wide prior"
    )
    day_type_pseudo_count: float = Field(
        default=10.0,
        ge=0,
        description="Pseudo sign-ins pulling the weekday/weekend profile to the all-days one",
    )
    half_life_days: float = Field(
        default=90.0, gt=0, description="Event-time half-life of the learned counts"
    )
    odd_learning_weight: float = Field(
        default=0.5, ge=0, le=1, description="Weight with which an odd sign-in is learned"
    )
    weekend_days: list[int] = Field(
        default_factory=lambda: [5, 6], description="Weekend weekdays, Monday = 0"
    )
    learn_from_activity: bool = Field(
        default=True, description="Also learn the actor's working hours from their other actions"
    )
    min_activity: int = Field(
        default=100, ge=1, description="Actions of the actor before their working hours count"
    )
    working_day_share: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="A sign-in is in working hours when the actor was active within an hour of "
        "it on at least this share of their active days",
    )

    @field_validator("weekend_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(not 0 <= day <= 6 for day in value):
            raise ValueError("weekend days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))


class OffHoursSignIn(Detector[SignInTimeSettings]):
    name = "off_hours_sign_in"
    settings = SignInTimeSettings
    mitre = ("T1078", "Valid Accounts")

    def __init__(self, resolver: GeoResolver | None = None) -> None:
        self.resolver = resolver
        """Places sign-ins by IP when they carry no location (None: sent locations only)."""

    def _located(self, event: AuditEvent) -> str | None:
        """The zone of the place this event happened, when known."""
        if event.location is None and (self.resolver is None or event.ip is None):
            return None
        point = merge(event.location, event.ip, self.resolver) if self.resolver else None
        if point is None:
            loc = event.location
            return None if loc is None else zone_at(loc.country, loc.latitude, loc.longitude)
        return zone_at(point.country, point.latitude, point.longitude)

    def wants(self, event: AuditEvent) -> bool:
        # Sign-ins are scored; every other action the actor takes teaches its working hours.
        return event.outcome is Outcome.SUCCESS and event.action is not Action.SIGN_OUT

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: SignInTimeSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        now = millis(event.occurred_at)
        located = self._located(event) if event.action is Action.SIGN_IN else None
        home, source = home_zone(event, state, located, settings)
        local = event.occurred_at.astimezone(zone(home))
        day = WEEKEND if local.weekday() in settings.weekend_days else WEEKDAY
        hour = local.hour
        if event.action is not Action.SIGN_IN:
            if settings.learn_from_activity and not _in_odd_session(state, event, now):
                _learn_activity(state, now, local, day, settings.half_life_days)
            return []
        _decay(state, now, settings.half_life_days)
        _decay(tenant, now, settings.half_life_days)

        findings: list[Finding] = []
        days = float((state.get("a") or {}).get("n", 0.0))
        if state.get("c", 0) + round(days) >= settings.min_evidence:  # days: decayed counts
            p, prior_share = probability(state, tenant, hour, day, settings)
            if p < settings.max_probability and located is not None and located != home:
                there = event.occurred_at.astimezone(zone(located))
                there_day = WEEKEND if there.weekday() in settings.weekend_days else WEEKDAY
                p_there, _ = probability(state, tenant, there.hour, there_day, settings)
                p = max(p, p_there)  # a traveller at a usual hour where they are
            short = max(0.0, 1.0 - float(state.get("c", 0)) / settings.min_history)
            if short > 0:
                # A short history is weak evidence: the hour must be odd for their peers too,
                # the less so the more of their own sign-ins there are.
                peers = tenant_probability(tenant, hour, day, settings, _PEER_PSEUDO)
                p += short * max(0.0, peers - p)
            activity = state.get("a")
            worked: float | None = None
            if (
                p < settings.max_probability
                and settings.learn_from_activity
                and activity
                and activity.get("c", 0) >= settings.min_activity
            ):
                worked = working_share(activity, hour)
            if p < settings.max_probability and (
                worked is None or worked < settings.working_day_share
            ):
                findings.append(
                    self._finding(
                        event, local, state, p, prior_share, worked, settings, (home, source)
                    )
                )
        if findings:
            # Its session's actions must not teach working hours (see _in_odd_session).
            state["o"] = {"s": event.session_id, "t": now}
        weight = settings.odd_learning_weight if findings else 1.0
        _learn(state, now, hour, day, weight, settings.half_life_days)
        _learn(tenant, now, hour, day, weight, settings.half_life_days)
        state["c"] = state.get("c", 0) + 1
        if located is not None and not findings:
            _learn_zone(state, located)
        return findings

    def _finding(
        self,
        event: AuditEvent,
        local: datetime,
        state: dict[str, Any],
        p: float,
        prior_share: float,
        worked: float | None,
        settings: SignInTimeSettings,
        where: tuple[str, str],
    ) -> Finding:
        home, source = where
        when = f"{local:%H:%M} on {local:%a %Y-%m-%d} ({home}, {source})"
        usual = usual_hours(state.get("h") or [], state.get("a"))
        signins = int(state.get("c", 0))
        days = float((state.get("a") or {}).get("n", 0.0))
        if signins >= settings.min_history:
            confidence = "high"
        elif signins + days >= 2 * settings.min_evidence:
            confidence = "medium"
        else:
            confidence = "low"
        activity = (
            ""
            if worked is None
            else f" They were active within an hour of {local:%H}:00 on {worked:.1%} of their "
            f"active days (working hours from {settings.working_day_share:.0%})."
        )
        return Finding(
            severity=Severity.LOW if confidence == "low" else Severity.MEDIUM,
            title=f"Sign-in by {event.actor.display_name or event.actor.id} at {local:%H:%M} "
            f"their time, unusual for them",
            explanation=(
                f"{event.actor.id} signed in at {when}. Their usual hours are {usual} "
                f"(from {signins} sign-ins and {days:.0f} active days). The estimated "
                f"probability of a sign-in in the {local:%H}:00 hour is {p:.2%}, below the "
                f"alert threshold of {settings.max_probability:.2%}. Confidence: {confidence} "
                f"(the tenant's prior carries {prior_share:.0%} of the estimate).{activity}"
            ),
            window_start=event.occurred_at,
            window_end=event.occurred_at,
            evidence=[event.event_id],
            observations=[
                Observation(
                    metric="sign_in_hour_probability",
                    observed=round(p, 6),
                    baseline=settings.max_probability,
                    unit="probability",
                ),
                Observation(metric="sign_in_local_hour", observed=local.hour, unit="hour"),
                Observation(metric="sign_ins_in_profile", observed=state["c"]),
            ],
            extra={
                "local_time": local.isoformat(),
                "usual_hours": usual,
                "zone": home,
                "zone_source": source,
                "confidence": confidence,
            },
        )


def _in_odd_session(state: dict[str, Any], event: AuditEvent, now: int) -> bool:
    """Whether ``event`` belongs to the session of the actor's last odd sign-in: the same
    ``session_id``, or, when that sign-in had none, the hour after it."""
    odd = state.get("o")
    if not odd:
        return False
    if odd.get("s") is not None:
        return bool(event.session_id == odd["s"])
    return 0 <= now - int(odd.get("t", 0)) < _HOUR


def _learn_activity(
    state: dict[str, Any], now: int, local: datetime, day: int, half_life_days: float
) -> None:
    """Count an action; the hour histogram counts each local hour of each day once (presence),
    ``n`` the active days. Decays at most once a day (cheap). Hours are counted in order: an
    action older than the last hour counted only adds to the raw count ``c``."""
    activity: dict[str, Any] = state.setdefault("a", {})
    activity["c"] = activity.get("c", 0) + 1
    slot = local.date().toordinal() * HOURS + local.hour
    last = activity.get("s")
    if last is not None and slot <= last:
        return
    if now - activity.get("t", now) >= _DAY:
        _decay(activity, now, half_life_days)
    counts: list[float] = activity.get("h") or [0.0] * (2 * HOURS)
    bucket = day * HOURS + local.hour
    counts[bucket] = round(counts[bucket] + 1.0, 6)
    activity["h"] = counts
    if last is None or slot // HOURS != last // HOURS:
        activity["n"] = round(activity.get("n", 0.0) + 1.0, 6)
    activity["s"] = slot
    activity.setdefault("t", now)


def working_share(activity: dict[str, Any], hour: int) -> float:
    """Share of the actor's active days on which they were active within an hour of ``hour``
    (circularly, any day type): the busiest of the three hours, a lower bound on those days."""
    counts: list[float] = activity.get("h") or []
    days = float(activity.get("n", 0.0))
    if not counts or days <= 0:
        return 0.0
    near = max(counts[(hour + k) % HOURS] + counts[HOURS + (hour + k) % HOURS] for k in (-1, 0, 1))
    return min(1.0, near / days)


def _decay(profile: dict[str, Any], now: int, half_life_days: float) -> None:
    """Age ``profile``'s counts to ``now`` (event time; never backwards)."""
    last = profile.get("t")
    if last is None or now <= last:
        return
    factor = 0.5 ** ((now - last) / (half_life_days * _DAY))
    profile["h"] = [c * factor for c in profile.get("h", [])]
    profile["n"] = profile.get("n", 0.0) * factor
    profile["t"] = now


def _learn(
    profile: dict[str, Any], now: int, hour: int, day: int, weight: float, half_life_days: float
) -> None:
    """Add one sign-in; a late one (before the last seen) counts as already decayed."""
    counts: list[float] = profile.get("h") or [0.0] * (2 * HOURS)
    last = profile.get("t", now)
    if now < last:
        # Decayed from its own time to the profile's, as if it had arrived in order.
        weight *= 0.5 ** ((last - now) / (half_life_days * _DAY))
    counts[day * HOURS + hour] += weight
    profile["h"] = [round(c, 6) for c in counts]
    profile["n"] = round(profile.get("n", 0.0) + weight, 6)
    profile["t"] = max(last, now)


def _smooth(counts: list[float], radius: int) -> list[float]:
    """Circular smoothing with weights 1, 1/2, 1/4, ...; keeps the total."""
    offsets = range(-radius, radius + 1)
    total = sum(0.5 ** abs(k) for k in offsets)
    return [
        sum(0.5 ** abs(k) * counts[(h + k) % HOURS] for k in offsets) / total for h in range(HOURS)
    ]


def _distribution(counts: list[float], day: int, settings: SignInTimeSettings) -> list[float]:
    """Smoothed hour distribution for ``day``: its own counts shrunk to the all-days ones."""
    if not counts:
        return [1 / HOURS] * HOURS
    radius = settings.smoothing_hours
    both = _smooth([counts[h] + counts[HOURS + h] for h in range(HOURS)], radius)
    own = _smooth(counts[day * HOURS : (day + 1) * HOURS], radius)
    n_all, n_own = sum(both), sum(own)
    if n_all <= 0:
        return [1 / HOURS] * HOURS
    m = settings.day_type_pseudo_count
    if n_own + m <= 0:
        return [b / n_all for b in both]
    return [(own[h] + m * both[h] / n_all) / (n_own + m) for h in range(HOURS)]


def probability(
    state: dict[str, Any],
    tenant: dict[str, Any],
    hour: int,
    day: int,
    settings: SignInTimeSettings,
) -> tuple[float, float]:
    """(probability of a sign-in in ``hour`` on a ``day`` type, the tenant prior's share)."""
    n = float(state.get("n", 0.0))
    actor = _distribution(state.get("h", []), day, settings)[hour] if n > 0 else 0.0
    prior = tenant_probability(tenant, hour, day, settings)
    k = settings.prior_weight
    activity = state.get("a") or {}
    # Activity carries a new actor and fades out as their own sign-ins reach min_history.
    fade = max(0.0, 1.0 - float(state.get("c", 0)) / settings.min_history)
    w = min(float(activity.get("n", 0.0)), MAX_ACTIVITY_DAYS) * settings.activity_weight * fade
    worked = _distribution(activity.get("h", []), day, settings)[hour] if w > 0 else 0.0
    if n + w + k <= 0:
        return prior, 1.0
    return (n * actor + w * worked + k * prior) / (n + w + k), k / (n + w + k)


def tenant_probability(
    tenant: dict[str, Any],
    hour: int,
    day: int,
    settings: SignInTimeSettings,
    pseudo: float = _TENANT_PSEUDO,
) -> float:
    """The tenant prior: its actors' sign-ins in ``hour`` (their own clocks), shrunk to uniform
    with ``pseudo`` sign-ins."""
    t_n = float(tenant.get("n", 0.0))
    t_p = _distribution(tenant.get("h", []), day, settings)[hour]
    return (t_n * t_p + pseudo / HOURS) / (t_n + pseudo)


MAX_ACTIVITY_DAYS = 10.0
"""Active days counted as pseudo sign-ins at most: enough to carry a new actor, never
outweighing a real sign-in history."""


def home_zone(
    event: AuditEvent, state: dict[str, Any], located: str | None, settings: SignInTimeSettings
) -> tuple[str, str]:
    """(the actor's zone, where it comes from) for scoring and explaining this event."""
    if event.actor.timezone:
        return event.actor.timezone, "the actor's zone"
    zones: dict[str, float] = state.get("z") or {}
    if zones:
        return max(sorted(zones), key=lambda z: zones[z]), "inferred from their sign-in places"
    if located is not None:
        return located, "where this sign-in is from"
    return settings.timezone, "the tenant's zone"


def _learn_zone(state: dict[str, Any], located: str) -> None:
    """Count a sign-in's zone; at most four zones, the least used one making way."""
    zones: dict[str, float] = state.get("z") or {}
    zones[located] = zones.get(located, 0.0) + 1.0
    if len(zones) > 4:
        del zones[min(sorted(zones), key=lambda z: zones[z])]
    state["z"] = zones


def usual_hours(
    counts: list[float], activity: dict[str, Any] | None = None, coverage: float = 0.9
) -> str:
    """The hours holding ``coverage`` of the sign-ins (with too few, of the hours the actor
    was active), as ranges: ``"08:00-12:00, 13:00-17:00"``."""
    if sum(counts) < 3 and activity and activity.get("h"):
        counts = activity["h"]
    if not counts:
        return "unknown"
    by_hour = [counts[h] + counts[HOURS + h] for h in range(HOURS)]
    total = sum(by_hour)
    if total <= 0:
        return "unknown"
    chosen: set[int] = set()
    covered = 0.0
    for h in sorted(range(HOURS), key=lambda h: (-by_hour[h], h)):
        if covered >= coverage * total:
            break
        chosen.add(h)
        covered += by_hour[h]
    # A quiet hour between two usual ones is usual too (a lunch break is not a boundary).
    chosen |= {
        h for h in range(HOURS) if by_hour[h] > 0 and {(h - 1) % HOURS, (h + 1) % HOURS} <= chosen
    }
    if len(chosen) == HOURS:
        return "any hour"
    # Start at the beginning of a run, so no run wraps past the starting point.
    start = min(h for h in chosen if (h - 1) % HOURS not in chosen)
    ranges: list[str] = []
    first = start
    for i in range(HOURS):
        h = (start + i) % HOURS
        if h not in chosen:
            continue
        if (h - 1) % HOURS not in chosen:
            first = h
        if (h + 1) % HOURS not in chosen:
            ranges.append(f"{first:02d}:00-{(h + 1) % HOURS:02d}:00")
    return ", ".join(ranges)
