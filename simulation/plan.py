"""A whole simulation: the org, the timeline, the scenarios and their labels, and one stream of
events in event-time order (background work generated day by day, scenarios merged in).

``Plan(config)`` places the scenarios (cheap); ``plan.events()`` generates lazily, so a long
run never holds more than about a day of events. A plan's events can be iterated once (the
tenants' registries follow the changes); build a new ``Plan`` from the same config for the
same events again.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from auditstream.simulation import org as org_mod
from auditstream.simulation.activity import Activity, Claims
from auditstream.simulation.events import EventFactory, SimEvent
from auditstream.simulation.labels import Label
from auditstream.simulation.registry import Registry, seeded
from auditstream.simulation.scenarios import ATTACKS, LOOKALIKES, Context, ScenarioError, inject
from auditstream.simulation.timeline import LATEST_OFFSET, Timeline


@dataclass(frozen=True)
class PlanConfig:
    tenants: int = 3
    users: int = 30
    """People per tenant."""
    seed: int = 7
    history_days: int = 28
    attack_days: int = 7
    attacks: int = 10
    """Scenarios of each attack type."""
    lookalikes: int = 10
    """Scenarios of each benign look-alike type."""
    types: tuple[str, ...] = ()
    """Only these scenario types (empty: all)."""
    activity: float = 1.0
    """Scales every user's mean actions per day."""
    end: datetime | None = None
    """The timeline's anchor (default: the start of the current minute)."""
    run_tag: str | None = None
    """Put in every event's ``metadata.sim_run`` (None: nothing)."""

    def counts(self) -> dict[str, int]:
        wanted = set(self.types) if self.types else set(ATTACKS) | set(LOOKALIKES)
        unknown = sorted(wanted - set(ATTACKS) - set(LOOKALIKES))
        if unknown:
            known = ", ".join([*ATTACKS, *LOOKALIKES])
            raise ScenarioError(f"unknown scenario type(s) {unknown}; known: {known}")
        out = {name: self.attacks for name in ATTACKS if name in wanted}
        out |= {name: self.lookalikes for name in LOOKALIKES if name in wanted}
        return {k: v for k, v in out.items() if v > 0}

    def timeline(self) -> Timeline:
        if self.end is None:
            return Timeline.ending_now(self.history_days, self.attack_days)
        return Timeline(self.end, self.history_days, self.attack_days)


@dataclass
class PlanStats:
    events: int = 0
    background: int = 0
    scenario_events: int = 0
    actor_days: int = 0
    """Active (tenant, user, local date) triples of background work: the benign population."""
    by_action: dict[str, int] = field(default_factory=dict)


class Plan:
    def __init__(self, config: PlanConfig) -> None:
        self.config = config
        self.timeline = config.timeline()
        if config.end is None:
            self.config = replace(config, end=self.timeline.end)
        org = org_mod.build_org(config.tenants, config.users, config.seed)
        self.org = org_mod.with_activity(org, config.activity) if config.activity != 1.0 else org
        self.registries: dict[str, Registry] = {
            t.id: seeded(t.id, {u.id: u.role.value for u in t.users}, config.seed)
            for t in self.org.tenants
        }
        self.claims = Claims()
        context = Context(
            org=self.org,
            timeline=self.timeline,
            rng=random.Random(f"{config.seed}:scenarios"),
            factory=EventFactory(random.Random(f"{config.seed}:scenario-ids"), config.run_tag),
            registries=self.registries,
            claims=self.claims,
        )
        built = inject(context, config.counts())
        self.labels: dict[str, Label] = {b.label.id: b.label for b in built}
        self._scenario_events = [e for b in built for e in b.events if self.timeline.contains(e.at)]
        self.stats = PlanStats()
        self._used = False

    def detector_config(self) -> str:
        return org_mod.detector_config(self.org)

    def events(self) -> Iterator[SimEvent]:
        """Every event in event-time order (ties keep generation order). Once per plan."""
        if self._used:
            raise RuntimeError("a Plan's events can be iterated once; build a new Plan")
        self._used = True
        seq = itertools.count()
        heap: list[tuple[datetime, int, SimEvent]] = [
            (e.at, next(seq), e) for e in self._scenario_events
        ]
        heapq.heapify(heap)
        seed = self.config.seed
        workers = [
            Activity(
                tenant,
                self.registries[tenant.id],
                random.Random(f"{seed}:activity:{tenant.id}"),
                EventFactory(random.Random(f"{seed}:ids:{tenant.id}"), self.config.run_tag),
                self.timeline,
                self.claims,
            )
            for tenant in self.org.tenants
        ]
        stats = self.stats
        for day in self.timeline.local_dates():
            for worker in workers:
                for event in worker.day(day):
                    if self.timeline.contains(event.at):
                        heapq.heappush(heap, (event.at, next(seq), event))
            # Nothing generated later can be earlier than the next local midnight anywhere.
            next_midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            watermark = next_midnight - LATEST_OFFSET
            while heap and heap[0][0] < watermark:
                yield self._count(heapq.heappop(heap)[2])
        while heap:
            yield self._count(heapq.heappop(heap)[2])
        stats.actor_days = sum(w.actor_days for w in workers)

    def _count(self, event: SimEvent) -> SimEvent:
        stats = self.stats
        stats.events += 1
        if event.scenario is None:
            stats.background += 1
        else:
            stats.scenario_events += 1
        stats.by_action[event.action] = stats.by_action.get(event.action, 0) + 1
        return event


def fit_activity(config: PlanConfig, count: int) -> PlanConfig:
    """``config`` with its activity scaled so the plan has about ``count`` events.

    Generates the plan once at the configured activity to measure it: sign-ins and scenarios
    are a fixed cost, the rest scales with the activity.
    """
    pilot = Plan(config)
    for _ in pilot.events():
        pass
    stats = pilot.stats
    fixed = stats.by_action.get("sign_in", 0) + stats.by_action.get("sign_in_failed", 0)
    fixed += stats.by_action.get("sign_out", 0) + stats.scenario_events
    variable = stats.events - fixed
    if count <= fixed or variable <= 0:
        raise ScenarioError(
            f"{count} events are too few: sign-ins and scenarios alone take {fixed} with "
            f"{config.tenants} tenant(s) of {config.users} users over "
            f"{config.history_days + config.attack_days} "
            f"days; raise --count (or --duration) or lower --users / --days"
        )
    factor = config.activity * (count - fixed) / variable
    return replace(config, activity=factor, end=pilot.timeline.end)
