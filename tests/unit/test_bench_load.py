"""The load generator: rate control on an injected clock, templates, injected triggers."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from auditstream.bench.load import (
    LoadConfig,
    LoadGenerator,
    Pacer,
    SampleTraffic,
    Template,
    stamp,
    template,
)
from auditstream.schemas.actions import Action
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import Normalized, Normalizer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeProducer:
    def __init__(self, full_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.polls = 0
        self._full_every = full_every
        self._calls = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self._calls += 1
        if self._full_every and self._calls % self._full_every == 0:
            raise BufferError("queue full")
        self.sent.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_pacer_releases_events_at_the_rate() -> None:
    pacer = Pacer(rate=1000, start=10.0)
    assert pacer.due(10.0) == 0
    assert pacer.due(10.0105) == 10
    pacer.took(10)
    assert pacer.due(10.0105) == 0
    assert pacer.due(10.020) == 10
    pacer.took(10)
    assert pacer.sent == 20
    assert pacer.skipped == 0


def test_pacer_skips_what_a_starved_caller_owes_beyond_the_limit() -> None:
    pacer = Pacer(rate=1000, start=0.0, max_behind=0.5)
    assert pacer.due(3.0) == 500  # 3000 owed, at most half a second of events at once
    assert pacer.skipped == 2500
    pacer.took(500)
    assert pacer.due(3.001) == 1


def test_pacer_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(rate=0, start=0.0)


def test_rendered_templates_are_events_the_normalizer_accepts() -> None:
    source = SampleTraffic(LoadConfig(actors_per_tenant=50, templates=300))
    # the events are stamped 2026-11-22T01:02:03Z: judge them by a clock of that night
    now = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    step = Normalizer(65_536, RecentIds(60, 1000), now=lambda: now)
    actors = set()
    for n in range(300):
        t = source.normal()
        event_id = f"01963d4e-1b2c-7a00-8000-{n:012d}".encode()
        value = t.render(event_id, b"2026-11-22T01:02:03.456Z", stamp("run1", 2, 1234))
        outcome = step(value)
        assert isinstance(outcome, Normalized), outcome
        assert outcome.key == t.key
        assert outcome.event.metadata == {"bench_run": "run1", "bench_step": 2, "bench_ms": 1234}
        actors.add(outcome.event.actor.id)
    assert len(actors) > 50  # spread over many actors, not the demo's 18


def test_template_leaves_out_id_time_and_metadata() -> None:
    t = template(
        {
            "event_id": "x",
            "occurred_at": "y",
            "metadata": {"a": 1},
            "tenant_id": "acme",
            "actor": {"id": "u:1"},
            "action": "update",
            "resource": {"type": "task", "id": "1"},
        }
    )
    assert t.key == b"acme:u\\:1"
    doc = orjson.loads(b"{" + t.body + b"}")
    assert set(doc) == {"tenant_id", "actor", "action", "resource"}


def run_generator(
    rate: float, seconds: float, burst_every: float, limit: int | None = None, full: int = 0
) -> tuple[LoadGenerator, FakeProducer, object]:
    clock = FakeClock()
    producer = FakeProducer(full_every=full)
    config = LoadConfig(actors_per_tenant=20, templates=200, burst_every=burst_every)
    generator = LoadGenerator(
        producer,
        "raw",
        SampleTraffic(config),
        "run1",
        config,
        clock=clock,
        wall=clock.wall,
        sleep=clock.sleep,
    )
    load = generator.run(3, rate, seconds, limit=limit)
    return generator, producer, load


def test_generator_holds_the_rate_over_the_duration() -> None:
    _, producer, load = run_generator(rate=2000, seconds=1.0, burst_every=0)
    assert 1990 <= len(producer.sent) <= 2000
    assert load.produced == len(producer.sent)  # type: ignore[attr-defined]
    assert load.rate == pytest.approx(2000, rel=0.01)  # type: ignore[attr-defined]
    metadata = orjson.loads(producer.sent[-1][1])["metadata"]
    assert metadata["bench_run"] == "run1"
    assert metadata["bench_step"] == 3
    assert abs(metadata["bench_ms"] - 1_800_000_001_000) <= 2


def test_generator_injects_bursts_and_remembers_when_each_trigger_was_sent() -> None:
    generator, producer, load = run_generator(rate=1000, seconds=1.0, burst_every=0.5)
    assert load.bursts == 2  # type: ignore[attr-defined]
    assert len(generator.triggers) == 2 * 25
    assert {s.burst for s in generator.triggers.values()} == {1, 2}
    assert all(s.step == 3 for s in generator.triggers.values())
    events = {orjson.loads(v)["event_id"]: orjson.loads(v) for _, v, _ in producer.sent}
    for event_id, sent in generator.triggers.items():
        event = events[event_id]
        assert event["action"] == Action.DELETE.value
        assert event["actor"]["id"] == f"bench_burst_{sent.burst:06d}"
    # the bursts are part of the rate, not on top of it
    assert 990 <= len(producer.sent) <= 1000


def test_generator_stops_at_the_limit_and_retries_when_the_queue_is_full() -> None:
    _, producer, load = run_generator(rate=10_000, seconds=60.0, burst_every=0, limit=777, full=7)
    assert len(producer.sent) == 777
    assert load.produced == 777  # type: ignore[attr-defined]


def test_template_render_is_plain_concatenation() -> None:
    t = Template(key=b"k", body=b'"tenant_id":"t"')
    assert t.render(b"id", b"ts", b"{}") == (
        b'{"event_id":"id","occurred_at":"ts","tenant_id":"t","metadata":{}}'
    )
