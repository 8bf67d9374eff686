"""Rate-controlled realistic events, with injected detection triggers.

Events are the demo's traffic (``producers/sample.py``: tenants, verbs, resources, field
changes) spread over many more actors, pre-rendered as JSON templates so that producing one
costs a fresh id, a timestamp and a byte join (a few microseconds: the load generator shares
the machine with what it measures). Every event carries its produce wall time in
``metadata.bench_ms``, so the store can tell how long it took to land.

Every ``burst_every`` seconds a fresh actor deletes ``burst_size`` tasks in a row, which the
mass-deletion detector turns into an alert; the produce time of each of those events is kept,
so the alert's evidence ids give produce -> alert latency.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from auditstream.producers import sample
from auditstream.schemas.event import format_ts, partition_key
from auditstream.schemas.ids import uuid7


@dataclass(frozen=True)
class LoadConfig:
    actors_per_tenant: int = 2_000
    templates: int = 20_000
    burst_every: float = 5.0
    """Seconds between injected mass deletions (0: none)."""
    burst_size: int = 25
    """Deletions per burst: the mass-deletion detector's default threshold."""
    seed: int = 11
    max_behind_seconds: float = 1.0
    """A generator further behind than this skips the excess instead of bursting it."""


class Pacer:
    """How many events are due by ``now`` to hold ``rate`` events/s from ``start``.

    When the caller falls more than ``max_behind`` seconds behind (CPU starved), the
    excess is skipped and counted in ``skipped``, so the rate stays a rate, not a burst.
    """

    def __init__(self, rate: float, start: float, max_behind: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._start = start
        self._max_behind = max(1.0, rate * max_behind)
        self.sent = 0
        self.skipped = 0

    def due(self, now: float) -> int:
        owed = int((now - self._start) * self.rate + 1e-6) - self.sent - self.skipped
        if owed > self._max_behind:
            excess = owed - int(self._max_behind)
            self.skipped += excess
            owed -= excess
        return max(0, owed)

    def took(self, count: int) -> None:
        self.sent += count


@dataclass(frozen=True)
class Template:
    """One event with its id, time and metadata left out: ``render`` fills them in."""

    key: bytes
    body: bytes
    """The JSON members after ``event_id`` and ``occurred_at``, without braces."""

    def render(self, event_id: bytes, occurred_at: bytes, stamp: bytes) -> bytes:
        return b"".join(
            (
                b'{"event_id":"',
                event_id,
                b'","occurred_at":"',
                occurred_at,
                b'",',
                self.body,
                b',"metadata":',
                stamp,
                b"}",
            )
        )


def template(fields: dict[str, Any]) -> Template:
    body = {k: v for k, v in fields.items() if k not in ("event_id", "occurred_at", "metadata")}
    return Template(
        key=partition_key(fields["tenant_id"], fields["actor"]["id"]),
        body=orjson.dumps(body)[1:-1],
    )


def stamp(run_id: str, step: int, wall_ms: int) -> bytes:
    return b'{"bench_run":"%s","bench_step":%d,"bench_ms":%d}' % (run_id.encode(), step, wall_ms)


class EventSource(Protocol):
    """Where the generator's events come from (the sample traffic, or a simulator)."""

    def normal(self) -> Template: ...

    def trigger(self, burst: int) -> list[Template]: ...


class SampleTraffic:
    """The demo's traffic over ``actors_per_tenant`` actors per tenant, and mass deletions."""

    def __init__(self, config: LoadConfig) -> None:
        self._config = config
        rng = random.Random(config.seed)  # noqa: S311 (sample data, not secrets)
        actors = [
            (tenant, i, tz) for tenant, (tz, *_) in sample.TENANTS.items()
            for i in range(config.actors_per_tenant)
        ]  # fmt: skip
        self._templates: list[Template] = []
        for n, fields in enumerate(sample.events(config.templates, seed=config.seed)):
            tenant, i, tz = rng.choice(actors)
            first, last = rng.choice(sample.FIRST), rng.choice(sample.LAST)
            fields["tenant_id"] = tenant
            fields["actor"] = {
                "id": f"usr_{tenant[:3]}{i:05d}",
                "type": "member",
                "display_name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}{i}@{tenant}.example",
                "timezone": tz,
            }
            fields["ip"] = f"203.0.{112 + i % 2}.{1 + i % 250}"
            fields["session_id"] = f"sess_{tenant[:3]}{i:05d}_{n // 40}"
            if fields["resource"]["type"] == "session":
                fields["resource"]["id"] = fields["session_id"]
            self._templates.append(template(fields))
        self._next = 0

    def normal(self) -> Template:
        t = self._templates[self._next]
        self._next = (self._next + 1) % len(self._templates)
        return t

    def trigger(self, burst: int) -> list[Template]:
        actor = f"bench_burst_{burst:06d}"
        return [
            template(
                {
                    "tenant_id": "acme",
                    "actor": {"id": actor, "type": "member", "display_name": "Bench Burst"},
                    "action": "delete",
                    "resource": {"type": "task", "id": f"tas_{burst:06d}_{k:03d}"},
                    "outcome": "success",
                    "ip": "203.0.112.250",
                    "channel": "api",
                }
            )
            for k in range(self._config.burst_size)
        ]


@dataclass(frozen=True)
class Sent:
    """One produced trigger event."""

    step: int
    burst: int
    at: float
    """Wall time (``time.time()``) just before ``produce``."""


@dataclass
class StepLoad:
    """What the generator did in one step."""

    step: int
    target_rate: float
    started_wall: float = 0.0
    ended_wall: float = 0.0
    produced: int = 0
    skipped: int = 0
    bursts: int = 0

    @property
    def seconds(self) -> float:
        return max(1e-9, self.ended_wall - self.started_wall)

    @property
    def rate(self) -> float:
        return self.produced / self.seconds


class Produce(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes) -> None: ...

    def poll(self, timeout: float) -> int: ...


@dataclass
class LoadGenerator:
    """Produces ``source``'s events to ``topic`` at a rate; remembers trigger events."""

    producer: Produce
    topic: str
    source: EventSource
    run_id: str
    config: LoadConfig = field(default_factory=LoadConfig)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    triggers: dict[str, Sent] = field(default_factory=dict)
    bursts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _send(self, value: bytes, key: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value, key)
                return
            except BufferError:  # librdkafka's queue is full: let it drain
                self.producer.poll(0.005)

    def run(
        self,
        step: int,
        rate: float,
        seconds: float,
        stop: threading.Event | None = None,
        limit: int | None = None,
    ) -> StepLoad:
        """Produce at ``rate`` for ``seconds``, or until ``stop`` is set or ``limit`` sent."""
        load = StepLoad(step, rate, started_wall=self.wall())
        start = self.clock()
        pacer = Pacer(rate, start, self.config.max_behind_seconds)
        pending: list[tuple[int, Template]] = []
        next_burst = start + self.config.burst_every / 2 if self.config.burst_every else None
        end = start + seconds
        run_id = self.run_id
        while (now := self.clock()) < end and not (stop is not None and stop.is_set()):
            if next_burst is not None and now >= next_burst:
                self.bursts += 1
                load.bursts += 1
                pending.extend((self.bursts, t) for t in self.source.trigger(self.bursts))
                next_burst += self.config.burst_every
            due = pacer.due(now)
            if limit is not None:
                if load.produced >= limit:
                    break
                due = min(due, limit - load.produced)
            if due == 0:
                self.sleep(0.001)
                continue
            wall = self.wall()
            occurred = format_ts(datetime.fromtimestamp(wall, UTC)).encode()
            tag = stamp(run_id, step, int(wall * 1000))
            for _ in range(due):
                event_id = str(uuid7()).encode()
                if pending:
                    burst, t = pending.pop(0)
                    value = t.render(event_id, occurred, tag)
                    with self.lock:
                        self.triggers[event_id.decode()] = Sent(step, burst, self.wall())
                else:
                    t = self.source.normal()
                    value = t.render(event_id, occurred, tag)
                self._send(value, t.key)
            self.producer.poll(0)
            pacer.took(due)
            load.produced += due
        load.skipped = pacer.skipped
        load.ended_wall = self.wall()
        return load

    def sent_at(self, event_id: str) -> Sent | None:
        with self.lock:
            return self.triggers.get(event_id)
