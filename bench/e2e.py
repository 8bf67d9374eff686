"""One end-to-end run: the real pipeline on this machine, driven at fixed rates, measured.

1. Start the sink and the stream worker as child processes (``pipeline.Pipeline``, as in a
   deployment) against a fresh temporary home (own chDB store), own topics and groups.
2. For each target rate (ascending): produce for ``duration`` seconds, sampling consumer
   groups, CPU and memory every second; then let the pipeline drain and ask the store how
   long each event took to land. A step is *sustained* when every stage's lag stays flat
   and the store keeps up with what was produced; the ramp stops at the first that is not.
3. Produce a backlog at once and watch each stage drain it (its capacity, flat out).
4. Stop the pipeline; measure the baselines (a bare consume loop on the same topics; a
   direct batched insert of the same rows, in a child process with its own chDB).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from auditstream.bench import baselines, faust_baseline, procstats
from auditstream.bench.lag import LagProbe, LagSummary, Position, bounded
from auditstream.bench.latency import AlertListener, AlertMatcher, Percentiles
from auditstream.bench.load import LoadConfig, LoadGenerator, SampleTraffic, StepLoad
from auditstream.bench.report import Capacity, E2EResult, Machine, Ratio, Stages, StepResult
from auditstream.config import Settings
from auditstream.pipeline import Pipeline
from auditstream.sinks import query
from auditstream.stream_jobs.detect import repartition_topic


@dataclass(frozen=True)
class E2EOptions:
    rates: tuple[float, ...] = (1_000.0, 2_000.0, 3_000.0, 5_000.0, 10_000.0)
    duration: float = 60.0
    warmup: float = 10.0
    backlog: int = 100_000
    baseline_events: int = 200_000
    burst_every: float = 1.0
    drain_timeout: float = 180.0
    all_steps: bool = False
    """Run every rate even after one was not sustained."""
    keep: bool = False
    """Keep the temporary home and the run's topics."""
    workers: int = 1
    """Stream worker processes (one consumer group: they split the partitions)."""
    sample_seconds: float = 1.0


@dataclass(frozen=True)
class Sample:
    at: float
    """Monotonic seconds."""
    positions: Mapping[str, Position]
    procs: procstats.Snapshot


def short_names(app_id: str, settings: Settings) -> dict[str, str]:
    """``group/topic`` -> the short names the report uses."""
    t = settings.topics
    worker, sink = f"{app_id}-worker", f"{app_id}-sink"
    return {
        f"{app_id}-normalizer/{t.raw}": "worker/raw",  # the normalize stage
        f"{worker}/{t.normalized}": "worker/normalized",
        f"{worker}/{repartition_topic(t.normalized)}": "worker/by-ip",
        f"{sink}/{t.normalized}": "sink/normalized",
        f"{sink}-alerts/{t.alerts}": "sink/alerts",
    }


STAGE_KEYS = {"normalize": "worker/raw", "detect": "worker/normalized", "sink": "sink/normalized"}
STEADY_KEYS = ("worker/raw", "worker/normalized", "sink/normalized")


def window(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at <= end]


def progress_rate(samples: Sequence[Sample], key: str) -> float:
    """Committed messages per second between the first and last sample."""
    have = [s for s in samples if key in s.positions]
    if len(have) < 2 or have[-1].at <= have[0].at:
        return 0.0
    done = have[-1].positions[key].committed - have[0].positions[key].committed
    return done / (have[-1].at - have[0].at)


def drain_rate(samples: Sequence[Sample], key: str, start: int, count: int) -> float:
    """Events/s while ``key`` went from 10% to 90% of ``count`` past ``start`` (committed)."""
    lo, hi = start + count // 10, start + count * 9 // 10
    first = next((s for s in samples if s.positions.get(key, _NONE).committed >= lo), None)
    last = next((s for s in samples if s.positions.get(key, _NONE).committed >= hi), None)
    if first is None or last is None or last.at <= first.at:
        return 0.0
    return (last.positions[key].committed - first.positions[key].committed) / (last.at - first.at)


_NONE = Position(0, 0)


def combine_workers(values: dict[str, float]) -> dict[str, float]:
    """With several worker processes (``worker-1``, ``worker-2``...), ``worker`` is their sum."""
    parts = [v for k, v in values.items() if k.startswith("worker-")]
    if parts:
        values["worker"] = round(sum(parts), 1)
    return values


def cpu_split(before: procstats.Snapshot, after: procstats.Snapshot) -> dict[str, float]:
    usage = procstats.usage(before, after)
    out = {role: round(v, 1) for role, v in usage.by_role.items()}
    out["others"] = round(usage.others, 1)
    out["machine"] = round(usage.machine, 1)
    return combine_workers(out)


def per_event_us(
    before: procstats.Snapshot, after: procstats.Snapshot, events: Mapping[str, float]
) -> dict[str, float]:
    """CPU µs per event processed, by role. ``events``: what each role processed in the
    window (``worker``, ``sink``; ``*`` for the rest: what was produced). A worker that
    falls behind is charged per event it handled, not per event offered."""
    out: dict[str, float] = {}
    total: float = 0.0
    handled = 0.0
    for role, b in before.procs.items():
        if role not in after.procs:
            continue
        seconds = after.procs[role].cpu_seconds - b.cpu_seconds
        kind = "worker" if role.startswith("worker") else role
        count = events.get(kind, events.get("*", 0.0))
        if count > 0:
            out[role] = round(seconds / count * 1e6, 1)
        if role.startswith("worker-"):
            total += seconds
            handled = count
    if total and handled > 0:
        out["worker"] = round(total / handled * 1e6, 1)
    return out


def verdict(
    target: float,
    load: StepLoad,
    stored_rate: float,
    lags: Mapping[str, Sequence[tuple[float, float]]],
) -> tuple[bool, str]:
    """Sustained: the generator held the rate, the store kept up, no stage's lag grows."""
    if load.rate < 0.97 * target:
        return False, f"generator reached {load.rate:,.0f}/s only"
    growing = [k for k, samples in lags.items() if not bounded(samples, target)]
    if growing:
        return False, "lag grows: " + ", ".join(growing)
    if stored_rate < 0.9 * load.rate:
        return False, f"stored {stored_rate:,.0f}/s of {load.rate:,.0f}/s"
    return True, "lag flat"


class Sampler:
    """Samples consumer groups and processes every ``interval`` seconds, in a thread."""

    def __init__(
        self,
        probe: LagProbe,
        names: Mapping[str, str],
        pids: Callable[[], Mapping[str, int]],
        interval: float,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        self._probe, self._names, self._pids = probe, names, pids
        self._interval, self._on_sample = interval, on_sample
        self.samples: list[Sample] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._lock = threading.Lock()

    def take(self) -> Sample | None:
        try:
            raw = self._probe.sample()
        except Exception:
            self.errors += 1
            return None
        positions = {self._names.get(k, k): v for k, v in raw.items()}
        sample = Sample(
            time.monotonic(), positions, procstats.snapshot(self._pids(), time.monotonic())
        )
        with self._lock:
            self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            sample = self.take()
            if sample is not None and self._on_sample is not None:
                self._on_sample(sample)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def since(self, start: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.at >= start]


def stored_stats(
    settings: Settings, run_id: str, step: int, lo_ms: int, hi_ms: int
) -> dict[str, Any]:
    """From the store: rows of this step, how many landed in the window, latencies."""
    sql = f"""
        SELECT
            count() AS total,
            countIf(stored >= {lo_ms} AND stored < {hi_ms}) AS stored_in_window,
            quantilesExactIf(0.5, 0.95, 0.99)(stored - sent, sent >= {lo_ms} AND sent < {hi_ms}),
            maxIf(stored - sent, sent >= {lo_ms} AND sent < {hi_ms}),
            countIf(sent >= {lo_ms} AND sent < {hi_ms}),
            quantilesExactIf(0.5, 0.95, 0.99)(received - sent, sent >= {lo_ms} AND sent < {hi_ms}),
            maxIf(received - sent, sent >= {lo_ms} AND sent < {hi_ms})
        FROM (
            SELECT
                toUnixTimestamp64Milli(stored_at) AS stored,
                toUnixTimestamp64Milli(received_at) AS received,
                JSONExtractInt(metadata, 'bench_ms') AS sent
            FROM audit_events
            WHERE JSONExtractString(metadata, 'bench_run') = '{run_id}'
              AND JSONExtractInt(metadata, 'bench_step') = {step}
        )
    """
    row = query.run(settings.clickhouse, sql).rows[0]
    total, in_window, stored_q, stored_max, n, received_q, received_max = row

    def pct(q: list[float], top: float) -> Percentiles | None:
        if not n:
            return None
        return Percentiles(
            int(n), round(q[0], 1), round(q[1], 1), round(q[2], 1), round(float(top), 1)
        )

    return {
        "total": int(total),
        "in_window": int(in_window),
        "stored": pct(stored_q, stored_max),
        "received": pct(received_q, received_max),
    }


@dataclass
class Run:
    """The state of one ``bench e2e`` run."""

    options: E2EOptions
    console: Console
    settings: Settings
    """The user's settings: where Kafka is."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    notes: list[str] = field(default_factory=list)

    def env(self, home: Path) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
            "AUDITSTREAM_HOME": str(home),
            "AUDITSTREAM_TOPIC_PREFIX": f"bench{self.run_id}.",
            "AUDITSTREAM_APP_ID": f"bench-{self.run_id}",
            "AUDITSTREAM_PARTITIONS": str(self.settings.topics.partitions),
        }

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {text}")


def _versions() -> dict[str, str]:
    out = {}
    for name in (
        "faust-streaming",
        "aiokafka",
        "confluent-kafka",
        "chdb",
        "clickhouse-connect",
        "pydantic",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def execute(
    options: E2EOptions, console: Console, settings: Settings, broker_pid: int | None
) -> E2EResult:
    from confluent_kafka import Producer

    from auditstream.infra import topics
    from auditstream.producers import ProducerConfig

    run = Run(options, console, settings)
    machine = Machine.here(_versions())
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    sys.setswitchinterval(0.001)  # the alert listener stamps arrivals; keep GIL waits short
    home = Path(tempfile.mkdtemp(prefix=f"auditstream-bench-{run.run_id}-"))
    env = run.env(home)
    bench = Settings.from_env(env)
    t = bench.topics
    bootstrap = bench.kafka.bootstrap_servers
    topics.ensure_topics(bootstrap, t)
    pipeline = Pipeline(env={**os.environ, **env}, settings=bench)
    app = bench.app_id
    probe = LagProbe(
        bootstrap,
        {
            f"{app}-normalizer": [t.raw],
            f"{app}-worker": [t.normalized],
            f"{app}-sink": [t.normalized],
        },
        t.partitions,
    )

    extra_workers: list[subprocess.Popen[bytes]] = []

    def pids() -> dict[str, int]:
        out = {"bench": os.getpid()}
        procs = {"sink": pipeline.procs.get("sink")}
        workers = [pipeline.procs.get("worker"), *extra_workers]
        # The normalizer process and the Faust worker(s) together are "worker" (the stream
        # stages), as when the normalizer was a Faust agent: see combine_workers.
        procs.update({f"worker-{n}": w for n, w in enumerate(workers, 1)})
        procs["worker-normalizer"] = pipeline.procs.get("normalizer")
        for role, proc in procs.items():
            if proc is not None and proc.poll() is None:
                out[role] = proc.pid
        if broker_pid is not None:
            out["broker"] = broker_pid
        return out

    producer = Producer(
        ProducerConfig(bootstrap_servers=bootstrap, topic=t.raw).librdkafka_config()
    )
    run.say("building sample traffic")
    source = SampleTraffic(LoadConfig(burst_every=options.burst_every))
    generator = LoadGenerator(
        producer, t.raw, source, run.run_id, LoadConfig(burst_every=options.burst_every)
    )
    matcher = AlertMatcher(generator.sent_at)
    steps: list[StepResult] = []
    capacity: Capacity | None = None
    peak: dict[str, float] = {}
    listener: AlertListener | None = None
    sampler: Sampler | None = None
    last_print = [0.0]

    def show(sample: Sample) -> None:
        if sample.at - last_print[0] < 5:
            return
        last_print[0] = sample.at
        lag = ", ".join(
            f"{k} {sample.positions[k].lag:,}" for k in STEADY_KEYS if k in sample.positions
        )
        run.say(f"  lag: {lag}")

    try:
        run.say(f"starting the sink and the worker (home {home}, topics bench{run.run_id}.*)")
        pipeline.start_all()
        extra_workers += [_start_worker(env, home, n) for n in range(2, options.workers + 1)]
        pipeline.wait_sink_ready(120)
        listener = AlertListener(bootstrap, t.alerts, t.partitions, matcher)
        listener.start()
        sampler = Sampler(probe, short_names(app, bench), pids, options.sample_seconds, show)
        sampler.start()
        _warm_up(run, generator, producer, sampler, pipeline)
        for number, rate in enumerate(options.rates, 1):
            result = _step(
                run, number, rate, generator, producer, sampler, matcher, listener, pipeline, bench
            )
            steps.append(result)
            if not result.sustained and not options.all_steps:
                run.say(f"step {number} ({rate:,.0f}/s) not sustained: stopping the ramp")
                break
        if options.backlog > 0:
            capacity = _capacity(run, options.backlog, generator, producer, sampler, pipeline)
        final = procstats.snapshot(pids(), time.monotonic())
        peak = {role: round(p.peak_rss_bytes / 2**20, 1) for role, p in final.procs.items()}
    finally:
        if sampler is not None:
            sampler.stop()
        if listener is not None:
            listener.stop()
        run.say("stopping the pipeline")
        for proc in extra_workers:
            _stop(proc)
        pipeline.stop_all()
        producer.flush(10)
    run.say("baselines: bare consume loops, then a direct batched insert (child process)")
    raw = baselines.bare_consume(bootstrap, t.raw, t.partitions, options.baseline_events)
    normalized = baselines.bare_consume(
        bootstrap, t.normalized, t.partitions, options.baseline_events
    )
    run.say("baselines: bare Faust agents (consume; relay to a scratch topic), child processes")
    # As many events as the consume loops found (a transactional topic has fewer messages
    # than offsets: the bare agents would wait for the difference).
    faust_consume = faust_baseline.measure(
        bootstrap, t.normalized, t.partitions, normalized.events, "consume"
    )
    faust_relay = faust_baseline.measure(bootstrap, t.raw, t.partitions, raw.events, "relay")
    insert = baselines.direct_insert(
        bootstrap,
        t.normalized,
        t.partitions,
        options.baseline_events,
        bench.clickhouse.batch_max_rows,
    )
    base = {
        "consume_raw": round(raw.rate),
        "consume_normalized": round(normalized.rate),
        "faust_consume_normalized": round(faust_consume.rate),
        "faust_consume_us_per_event": round(faust_consume.cpu_us_per_event, 1),
        "faust_relay_raw": round(faust_relay.rate),
        "faust_relay_us_per_event": round(faust_relay.cpu_us_per_event, 1),
        "insert_rows": round(insert.insert_rate),
        "sink_writer_rows": round(insert.writer_rate),
        "to_row_rows": round(insert.convert_rate),
    }
    ratios = _ratios(steps, capacity, base)
    if sampler is not None and sampler.errors:
        run.notes.append(f"{sampler.errors} lag samples failed (admin API timeouts)")
    if matcher.other:
        run.notes.append(f"{matcher.other} alerts from the sample traffic itself (not bursts)")
    if not options.keep:
        topics.delete_topics_with(bootstrap, run.run_id)
        shutil.rmtree(home, ignore_errors=True)
    else:
        run.notes.append(f"kept {home} and the topics bench{run.run_id}.*")
    return E2EResult(
        run_id=run.run_id,
        started_at=started_at,
        machine=machine,
        settings={
            "rates": list(options.rates),
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "backlog": options.backlog,
            "burst_every_s": options.burst_every,
            "partitions": t.partitions,
            "workers": options.workers,
            "sink_batch_rows": bench.clickhouse.batch_max_rows,
            "sink_batch_seconds": bench.clickhouse.batch_max_seconds,
            "anomaly_model": str(bench.anomaly_model) if bench.anomaly_model else None,
            "bootstrap": bootstrap,
        },
        steps=steps,
        capacity=capacity,
        baselines=base,
        ratios=ratios,
        peak_rss_mb=peak,
        alerts_other=matcher.other,
        notes=run.notes,
    )


def _start_worker(env: Mapping[str, str], home: Path, number: int) -> subprocess.Popen[bytes]:
    """One more stream worker in the same consumer group, with its own home (Faust dir)."""
    own = home / f"worker-{number}"
    (own / "logs").mkdir(parents=True, exist_ok=True)
    with (own / "logs" / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "auditstream.cli.main", "worker"],
            env={**os.environ, **env, "AUDITSTREAM_HOME": str(own), "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _warm_up(
    run: Run, generator: LoadGenerator, producer: Any, sampler: Sampler, pipeline: Pipeline
) -> None:
    """A few events through everything: the worker has its partitions, the sink its table."""
    run.say("warming up (the worker joins its group, the sink creates its tables)")
    load = generator.run(0, 200.0, 60.0, limit=500)
    producer.flush(30)
    _wait_drained(run, sampler, pipeline, 180.0, load.produced)


def _marker_slack(key: str, partitions: int) -> int:
    """Offsets a caught-up group may still lag by: the normalized topic is written in
    transactions, and each partition's last commit marker is an offset no consumer reads."""
    return partitions if key.endswith("/normalized") else 0


def _wait_drained(
    run: Run, sampler: Sampler, pipeline: Pipeline, timeout: float, expected: int = 0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.check()
        sample = sampler.take()
        if sample is not None:
            keys = [k for k in STEADY_KEYS if k in sample.positions]
            if (
                len(keys) == len(STEADY_KEYS)
                and all(
                    sample.positions[k].lag <= _marker_slack(k, run.settings.topics.partitions)
                    for k in keys
                )
                and sample.positions["sink/normalized"].committed >= expected
            ):
                return True
        time.sleep(1.0)
    run.say(f"[yellow]not drained after {timeout:.0f}s[/yellow]")
    return False


def _step(
    run: Run,
    number: int,
    rate: float,
    generator: LoadGenerator,
    producer: Any,
    sampler: Sampler,
    matcher: AlertMatcher,
    listener: AlertListener,
    pipeline: Pipeline,
    bench: Settings,
) -> StepResult:
    options = run.options
    run.say(f"step {number}: {rate:,.0f} events/s for {options.duration:.0f}s")
    start = time.monotonic()
    load = generator.run(number, rate, options.duration)
    end = time.monotonic()
    producer.flush(30)
    pipeline.check()
    steady = window(sampler.since(start), start + options.warmup, end)
    drained = _wait_drained(run, sampler, pipeline, options.drain_timeout)
    if not drained:
        run.notes.append(f"step {number}: backlog not drained within {options.drain_timeout:.0f}s")
    lo = load.started_wall + options.warmup
    hi = load.ended_wall
    stats = stored_stats(bench, run.run_id, number, int(lo * 1000), int(hi * 1000))
    seconds = max(1e-9, hi - lo)
    stored_rate = stats["in_window"] / seconds
    lags = {
        k: [(s.at, float(s.positions[k].lag)) for s in steady if k in s.positions]
        for k in STEADY_KEYS
    }
    ok, why = verdict(rate, load, stored_rate, lags)
    if not drained:
        ok, why = False, why if not ok else "did not drain"
    with listener.lock:
        alerts = Percentiles.of(matcher.for_step(number))
    stages = Stages(
        **{name: round(progress_rate(steady, key), 1) for name, key in STAGE_KEYS.items()}
    )
    span = steady[-1].at - steady[0].at if len(steady) > 1 else 0.0
    handled = {
        "worker": (stages.normalize + stages.detect) / 2 * span,
        "sink": stages.sink * span,
        "*": load.rate * span,
    }
    cpu = cpu_split(steady[0].procs, steady[-1].procs) if span else {}
    per_event = per_event_us(steady[0].procs, steady[-1].procs, handled) if span else {}
    result = StepResult(
        step=number,
        target_rate=rate,
        produced_rate=round(load.rate, 1),
        skipped=load.skipped,
        window_seconds=round(seconds, 1),
        stored_rate=round(stored_rate, 1),
        stored_fraction=round(stats["total"] / load.produced, 4) if load.produced else 0.0,
        stages=stages,
        lag={k: LagSummary.of(v) for k, v in lags.items() if v},
        sustained=ok,
        verdict=why,
        stored_latency=stats["stored"],
        normalized_latency=stats["received"],
        alert_latency=alerts,
        bursts=load.bursts,
        cpu=cpu,
        cpu_us_per_event=per_event,
    )
    run.say(
        f"step {number}: produced {load.rate:,.0f}/s, stored {stored_rate:,.0f}/s, "
        f"{'sustained' if ok else 'NOT sustained'} ({why}); produce→stored p99 "
        f"{result.stored_latency.p99 if result.stored_latency else '-'} ms, produce→alert p99 "
        f"{alerts.p99 if alerts else '-'} ms"
    )
    return result


def _capacity(
    run: Run,
    count: int,
    generator: LoadGenerator,
    producer: Any,
    sampler: Sampler,
    pipeline: Pipeline,
) -> Capacity:
    run.say(f"capacity: {count:,} events at once, then drained")
    before = sampler.take()
    start = time.monotonic()
    generator.run(len(run.options.rates) + 1, 1e9, 600.0, limit=count)
    producer.flush(60)
    _wait_drained(run, sampler, pipeline, max(run.options.drain_timeout, count / 500))
    samples = sampler.since(start)
    base = before.positions if before is not None else {}
    stages = {
        name: round(drain_rate(samples, key, base.get(key, _NONE).committed, count), 1)
        for name, key in STAGE_KEYS.items()
    }
    busy = [
        s for s in samples if any(s.positions.get(k, _NONE).lag > 0 for k in STEADY_KEYS)
    ] or samples
    first, last = (before or samples[0]), busy[-1]
    return Capacity(
        events=count,
        stages=Stages(**stages),
        cpu=cpu_split(first.procs, last.procs),
        cpu_us_per_event=per_event_us(first.procs, last.procs, {"*": count}),
    )


def _ratios(
    steps: Sequence[StepResult], capacity: Capacity | None, base: Mapping[str, float]
) -> list[Ratio]:
    out: list[Ratio] = []
    if capacity is not None:
        c = capacity.stages
        out += [
            Ratio(
                "worker: normalize (raw → normalized)",
                c.normalize,
                "bare consume, raw topic",
                base["consume_raw"],
            ),
            Ratio(
                "worker: normalize (raw → normalized)",
                c.normalize,
                "bare Faust agent relaying raw",
                base["faust_relay_raw"],
            ),
            Ratio(
                "worker: detect (normalized → alerts)",
                c.detect,
                "bare consume, normalized topic",
                base["consume_normalized"],
            ),
            Ratio(
                "worker: detect (normalized → alerts)",
                c.detect,
                "bare Faust agent, normalized",
                base["faust_consume_normalized"],
            ),
            Ratio(
                "sink: consume → row → insert → commit",
                c.sink,
                "direct batched insert",
                base["insert_rows"],
            ),
        ]
    out.append(
        Ratio(
            "sink writer (id check + insert)",
            base["sink_writer_rows"],
            "direct batched insert",
            base["insert_rows"],
        )
    )
    best = [s.stored_rate for s in steps if s.sustained]
    if best:
        out.append(
            Ratio(
                "end to end, max sustained",
                max(best),
                "bare consume, raw topic",
                base["consume_raw"],
            )
        )
        out.append(  # issue 14's target: at least 0.5x
            Ratio(
                "end to end, max sustained",
                max(best),
                "bare Faust agent, normalized",
                base["faust_consume_normalized"],
            )
        )
    return out
