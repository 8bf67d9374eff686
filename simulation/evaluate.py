"""``auditstream eval``: the labelled mix through the real pipeline, alerts scored against labels.

1. start (or reuse) the local broker, as ``auditstream demo`` does;
2. give the run its own topics (prefix ``eval-<run>.``), consumer groups (app id
   ``eval-<run>``), home (``$AUDITSTREAM_HOME/eval/<run>``: embedded store, logs, the
   detector config, labels and the report), so runs never mix;
3. start the sink and the stream worker as child processes, with the org's detector config
   (tenant time zones; the data stewards' clean-ups allowed in office hours);
4. replay the plan through the SDK: the history as fast as ``history_rate`` allows, then,
   once the worker has committed all of it, the attack period at ``rate`` events/s (so the
   latency is measured at a rate the pipeline sustains, not behind a backlog), writing
   labels as scenarios close;
5. wait until the worker has committed every event and every alert has been read;
6. score (``metrics.evaluate``), stop the pipeline, delete the run's topics.

``in_process=True`` skips 1-3 and 5 and runs the detection engine here (``offline``): the
same detection figures in seconds, without latency.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditstream.config import Settings
from auditstream.detectors import config as detector_config
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.registry import default_detectors
from auditstream.infra import kafka_local, topics
from auditstream.pipeline import Pipeline, PipelineError
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.simulation import adapters, offline, runner
from auditstream.simulation.labels import Label, LabelWriter
from auditstream.simulation.metrics import Report, SeenAlert, evaluate
from auditstream.simulation.plan import Plan, PlanConfig
from auditstream.simulation.timeline import DAY, Timeline
from auditstream.simulation.watch import (
    AlertCollector,
    group_lag,
    group_ready,
)

Progress = Callable[[str, int, int | None], None]
"""``(step, done, total)``: the caller draws it (the CLI as progress bars)."""
Status = Callable[[str], None]


class EvalError(RuntimeError):
    """The evaluation could not run; the message says what to do."""


@dataclass(frozen=True)
class EvalConfig:
    plan: PlanConfig = field(default_factory=PlanConfig)
    rate: float = 250.0
    """Events per second through the SDK during the attack period (0: as fast as possible)."""
    history_rate: float = 0.0
    """Events per second during the history (0: as fast as possible); the run then waits
    until the worker has caught up before the attack period starts."""
    partitions: int | None = None
    """Partitions of the run's topics (None: ``AUDITSTREAM_PARTITIONS``)."""
    detectors_config: Path | None = None
    """Use this TOML instead of the one generated for the simulated org."""
    in_process: bool = False
    keep_kafka: bool = False
    keep_topics: bool = False
    drain_timeout: float = 600.0
    """Seconds to wait for the worker to catch up after each phase."""
    stall_seconds: float = 60.0
    """Give up when the worker commits nothing for this long."""


@dataclass
class EvalResult:
    report: Report
    run_id: str
    home: Path
    events: int
    emit_seconds: float
    total_seconds: float
    alerts_stored: int | None
    config: EvalConfig
    machine: dict[str, Any]
    phases: list[tuple[str, int, float]] = field(default_factory=list)
    """(phase, events, seconds) of publishing."""
    samples: list[adapters.SampleResult] = field(default_factory=list)
    """The real-format samples through their adapters and the detectors (in this process)."""

    def to_json(self) -> dict[str, Any]:
        plan = asdict(self.config.plan)
        plan["end"] = self.config.plan.end.isoformat() if self.config.plan.end else None
        return {
            "run_id": self.run_id,
            "mode": "in-process" if self.config.in_process else "pipeline",
            "plan": plan,
            "rate": self.config.rate,
            "history_rate": self.config.history_rate,
            "events": self.events,
            "emit_seconds": round(self.emit_seconds, 2),
            "phases": [
                {"phase": name, "events": n, "seconds": round(sec, 2)}
                for name, n, sec in self.phases
            ],
            "total_seconds": round(self.total_seconds, 2),
            "alerts_stored": self.alerts_stored,
            "machine": self.machine,
            "samples": [r.to_json() for r in self.samples],
            **self.report.to_json(),
        }


def machine() -> dict[str, Any]:
    """The machine the figures come from: CPU model, cores, memory, OS, Python."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb: float | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent.parent,
            ).stdout.strip()
            or None
        )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": commit,
    }


def _engine(plan: Plan, path: Path | None) -> DetectionEngine:
    detectors = default_detectors()
    if path is not None:
        return DetectionEngine(detectors, detector_config.load(path, detectors))
    import tomllib

    document = tomllib.loads(plan.detector_config())
    return DetectionEngine(detectors, detector_config.build(document, detectors, "simulated org"))


def count_events(config: PlanConfig) -> tuple[int, int]:
    """(history, attack period) events ``config`` makes (generates them once, discards them)."""
    plan = Plan(config)
    history = attack = 0
    for event in plan.events():
        if event.at < plan.timeline.attack_start:
            history += 1
        else:
            attack += 1
    return history, attack


def run(
    settings: Settings,
    config: EvalConfig,
    progress: Progress = lambda step, done, total: None,
    status: Status = lambda text: None,
) -> EvalResult:
    """Run the evaluation; ``settings`` are the caller's (broker, home)."""
    began = time.monotonic()
    plan_config = config.plan
    if plan_config.end is None:  # one anchor for every pass over the plan
        plan_config = replace(plan_config, end=plan_config.timeline().end)
    config = replace(config, plan=plan_config)
    run_id = uuid.uuid4().hex[:8]
    home = settings.home / "eval" / run_id
    home.mkdir(parents=True, exist_ok=True)
    status(
        f"Planning {plan_config.tenants} tenants x {plan_config.users} users, "
        f"seed {plan_config.seed}"
    )
    sizes = count_events(plan_config)
    plan = Plan(plan_config)
    (home / "detectors.toml").write_text(
        config.detectors_config.read_text() if config.detectors_config else plan.detector_config()
    )
    samples = adapters.run(_engine(Plan(plan_config), config.detectors_config))
    if config.in_process:
        result = _in_process(plan, config, run_id, home, sum(sizes), began, progress)
        return replace(result, samples=samples)
    with _broker(settings, config, status) as bootstrap:
        run_settings, env = _run_env(settings, config, bootstrap, run_id, home, plan.timeline)
        topics.ensure_topics(bootstrap, run_settings.topics)
        pipeline = Pipeline(env=env, settings=run_settings)
        collector: AlertCollector | None = None
        try:
            status("Starting the stream worker and the ClickHouse sink...")
            pipeline.start_all()
            pipeline.wait_sink_ready()
            group = f"{run_settings.app_id}-worker"
            _wait(
                lambda: group_ready(bootstrap, group), 90, pipeline, "the worker to join its group"
            )
            collector = AlertCollector(bootstrap, run_settings.topics.alerts).start()
            labels, phases = _replay(
                plan,
                run_settings,
                bootstrap,
                home,
                sizes,
                config,
                lambda step: _drain(
                    bootstrap, group, run_settings, pipeline, collector, config, step, progress
                ),
                progress,
                status,
            )
            seen = [SeenAlert.from_alert(doc, ms) for doc, ms in collector.alerts()]
            stored = _stored_alerts(run_settings, len({a.alert_id for a in seen}))
        except PipelineError as exc:
            raise EvalError(f"{exc}\n(logs: {home / 'logs'})") from None
        finally:
            if collector is not None:
                collector.close()
            status("Stopping the pipeline...")
            pipeline.stop_all()
            if not config.keep_topics:
                topics.delete_topics_with(bootstrap, f"eval-{run_id}")
    report = evaluate(seen, labels, plan.stats.actor_days)
    return EvalResult(
        report=report,
        run_id=run_id,
        home=home,
        events=plan.stats.events,
        emit_seconds=sum(sec for _, _, sec in phases),
        total_seconds=time.monotonic() - began,
        alerts_stored=stored,
        config=config,
        machine=machine(),
        phases=phases,
        samples=samples,
    )


def _in_process(
    plan: Plan,
    config: EvalConfig,
    run_id: str,
    home: Path,
    total: int,
    began: float,
    progress: Progress,
) -> EvalResult:
    engine = _engine(plan, config.detectors_config)
    emitted: dict[str, dict[str, int]] = {}
    count = 0

    def seen(event: Any, ms: int) -> None:
        nonlocal count
        count += 1
        if event.scenario is not None:
            emitted.setdefault(event.scenario, {})[event.event_id] = ms
        if count % 500 == 0:
            progress("Detecting in-process", count, total)

    start = time.monotonic()
    alerts = offline.detect(engine, plan.events(), config.partitions or 6, seen)
    progress("Detecting in-process", count, total)
    seconds = time.monotonic() - start
    labels = [lb.with_emitted(emitted.get(lb.id, {})) for lb in plan.labels.values()]
    with LabelWriter(home / "labels.jsonl") as out:
        for label in labels:
            out.write(label)
    return EvalResult(
        report=evaluate(alerts, labels, plan.stats.actor_days),
        run_id=run_id,
        home=home,
        events=plan.stats.events,
        emit_seconds=seconds,
        total_seconds=time.monotonic() - began,
        alerts_stored=None,
        config=config,
        machine=machine(),
    )


@contextlib.contextmanager
def _broker(settings: Settings, config: EvalConfig, status: Status) -> Iterator[str]:
    """The bootstrap servers: the configured cluster, or the local broker (started if needed)."""
    if settings.kafka.external:
        yield settings.kafka.bootstrap_servers
        return
    status("Starting Kafka (the first run fetches its jars from Maven Central)...")
    try:
        before = kafka_local.status(settings.kafka.local)
        state = kafka_local.up(settings.kafka.local)
    except kafka_local.KafkaSetupError as exc:
        raise EvalError(str(exc)) from None
    try:
        yield state.bootstrap
    finally:
        if not before.running and not config.keep_kafka:
            kafka_local.down(settings.kafka.local)


def _run_env(
    settings: Settings,
    config: EvalConfig,
    bootstrap: str,
    run_id: str,
    home: Path,
    timeline: Timeline,
) -> tuple[Settings, dict[str, str]]:
    """The run's own topics, groups, store and detector config; nothing else inherited."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "AUDITSTREAM_ANOMALY_MODEL",
            "AUDITSTREAM_CLICKHOUSE_DSN",
            "AUDITSTREAM_TOPIC_PREFIX",
            "AUDITSTREAM_APP_ID",
        )
    }
    env = {
        **inherited,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUDITSTREAM_HOME": str(home),
        "AUDITSTREAM_TOPIC_PREFIX": f"eval-{run_id}.",
        "AUDITSTREAM_APP_ID": f"eval-{run_id}",
        "AUDITSTREAM_DETECTORS_CONFIG": str(home / "detectors.toml"),
        "AUDITSTREAM_PARTITIONS": str(config.partitions or settings.topics.partitions),
        "AUDITSTREAM_SINK_BATCH_SECONDS": "0.5",
        **time_window_env(settings, timeline, datetime.now(UTC)),
    }
    return Settings.from_env(env), env


def time_window_env(settings: Settings, timeline: Timeline, now: datetime) -> dict[str, str]:
    """Settings under which the run's own pipeline takes every event of ``timeline``.

    The normalizer dead-letters events older than the retention horizon or too far ahead of
    its clock (docs/decisions/0004). A timeline pinned with ``--end`` (to reproduce figures)
    grows older every day: its run, which has a store of its own, keeps it for as long as
    needed rather than losing its history to the dead-letter topic.
    """
    env: dict[str, str] = {}
    age_days = math.ceil((now - timeline.start) / DAY) + 1
    if age_days > settings.clickhouse.retention_days:
        env["AUDITSTREAM_RETENTION_DAYS"] = str(age_days)
    ahead = math.ceil((timeline.end - now).total_seconds()) + 60
    if ahead > settings.normalizer.max_future_skew_seconds:
        env["AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS"] = str(ahead)
    return env


def _wait(test: Callable[[], bool], timeout: float, pipeline: Pipeline, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.check()
        if test():
            return
        time.sleep(0.5)
    raise EvalError(f"timed out after {timeout:.0f}s waiting for {what}")


def _replay(
    plan: Plan,
    settings: Settings,
    bootstrap: str,
    home: Path,
    sizes: tuple[int, int],
    config: EvalConfig,
    wait: Callable[[str], None],
    progress: Progress,
    status: Status,
) -> tuple[list[Label], list[tuple[str, int, float]]]:
    """The history as fast as ``history_rate`` allows, a pause until the worker has caught up,
    then the attack period at ``rate``: latency is measured at a rate the pipeline sustains.
    Returns the labels (with emission times) and (phase, events, seconds) per phase."""
    producer = ProducerConfig(
        bootstrap_servers=bootstrap, topic=settings.topics.raw, spool_dir=home / "spool"
    )
    history, attack = sizes
    split = runner.Split(plan.events(), plan.timeline.attack_start)
    results = []
    phases = []
    with LabelWriter(home / "labels.jsonl") as out, AuditProducer(producer) as audit:
        for step, events, total, rate in (
            ("History (learning baselines)", split.before(), history, config.history_rate),
            (f"Attack period at {config.rate:g}/s", split.after(), attack, config.rate),
        ):

            def shown(n: int, step: str = step, total: int = total) -> None:
                progress(step, n, total)

            result = runner.run(
                events,
                audit.emit,
                plan.labels,
                runner.Pacer(rate),
                on_label=out.write,
                on_progress=shown,
            )
            results.append(result)
            phases.append((step, result.events, result.seconds))
            if result.stopped:
                raise EvalError("interrupted while publishing; nothing was scored")
            undelivered = audit.flush(60)
            if undelivered:
                raise EvalError(f"{undelivered} events were not delivered to Kafka; is it up?")
            status(f"Waiting for the worker to catch up ({step.split(' (')[0].lower()})...")
            wait(f"Worker caught up: {step.split(' (')[0].lower()}")
    return [lb for r in results for lb in r.labels], phases


def _drain(
    bootstrap: str,
    group: str,
    settings: Settings,
    pipeline: Pipeline,
    collector: AlertCollector,
    config: EvalConfig,
    step: str,
    progress: Progress,
) -> None:
    """Until the worker's group has committed everything and every alert has been read.

    Fails when the worker makes no progress for ``stall_seconds`` (stuck, or crash-looping
    without exiting), or has not caught up within ``drain_timeout``.
    """
    began = time.monotonic()
    backlog: int | None = None
    best: int | None = None
    moved = began
    logs = settings.home / "logs"
    while time.monotonic() - began < config.drain_timeout:
        pipeline.check()
        repartition = [
            t
            for t in topics.topics_with(bootstrap, settings.topics.normalized)
            if t.endswith("-repartition")
        ]
        lag = _lag(bootstrap, group, settings, repartition)
        now = time.monotonic()
        if lag is not None:
            backlog = lag if backlog is None else max(backlog, lag)
            progress(step, backlog - lag, backlog)
            if best is None or lag < best:
                best, moved = lag, now
            if lag == 0 and collector.caught_up():
                time.sleep(1.0)  # alerts of the last batch are published after its commit
                if collector.caught_up() and _lag(bootstrap, group, settings, repartition) == 0:
                    return
        if now - moved > config.stall_seconds:
            raise EvalError(
                f"the worker made no progress for {config.stall_seconds:.0f}s "
                f"({'no commits yet' if best is None else f'{best} messages behind'}); "
                f"see {logs / 'worker.log'}"
            )
        time.sleep(0.5)
    raise EvalError(
        f"the worker did not catch up within {config.drain_timeout:.0f}s; lower --rate or "
        f"raise the drain timeout (logs in {logs})"
    )


def _lag(bootstrap: str, group: str, settings: Settings, repartition: list[str]) -> int | None:
    """Unread messages: the normalizer's on the raw topic, the worker's downstream."""
    raw = group_lag(bootstrap, f"{settings.app_id}-normalizer", [settings.topics.raw])
    rest = group_lag(bootstrap, group, [settings.topics.normalized, *repartition])
    return None if raw is None or rest is None else raw + rest


def _stored_alerts(settings: Settings, expected: int, timeout: float = 15.0) -> int | None:
    """Alerts the sink stored in ``security_alerts`` (waits briefly for the last batch)."""
    from auditstream.sinks import query

    deadline = time.monotonic() + timeout
    stored: int | None = None
    while time.monotonic() < deadline:
        try:
            stored = int(
                query.run(
                    settings.clickhouse, "SELECT uniqExact(alert_id) FROM security_alerts"
                ).rows[0][0]
            )
        except Exception:  # the table appears with the first alert batch
            stored = None
        if stored is not None and stored >= expected:
            return stored
        time.sleep(0.5)
    return stored
