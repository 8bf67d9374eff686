"""The results of ``auditstream bench e2e``: typed, rendered as tables, written as JSON."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from auditstream.bench.lag import LagSummary
from auditstream.bench.latency import Percentiles


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gb: float
    kernel: str
    python: str
    load_average: tuple[float, float, float]
    """Before the run: other work on the machine shares its cores with the benchmark."""
    versions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def here(cls, versions: Mapping[str, str] | None = None) -> Machine:
        model = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        memory = 0.0
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) / 1024 / 1024
                    break
        except OSError:
            pass
        return cls(
            cpus=os.cpu_count() or 0,
            cpu_model=model,
            memory_gb=round(memory, 1),
            kernel=platform.release(),
            python=platform.python_version(),
            load_average=os.getloadavg(),
            versions=dict(versions or {}),
        )


@dataclass(frozen=True)
class Stages:
    """Events/s through each stage, from consumer-group progress over a window."""

    normalize: float
    detect: float
    sink: float


@dataclass(frozen=True)
class StepResult:
    step: int
    target_rate: float
    produced_rate: float
    skipped: int
    """Events the generator skipped because it fell more than a second behind."""
    window_seconds: float
    stored_rate: float
    """Rows whose ``stored_at`` falls in the steady window, per second."""
    stored_fraction: float
    """Of the events produced in this step, the fraction stored once drained."""
    stages: Stages
    lag: Mapping[str, LagSummary]
    sustained: bool
    verdict: str
    stored_latency: Percentiles | None
    normalized_latency: Percentiles | None
    """Produce -> ``received_at`` (stamped by the normalizer)."""
    alert_latency: Percentiles | None
    bursts: int
    cpu: Mapping[str, float]
    """% of one core by role over the steady window, with ``others`` and ``machine``."""
    cpu_us_per_event: Mapping[str, float]


@dataclass(frozen=True)
class Capacity:
    """A backlog produced at once, then drained: what each stage does flat out."""

    events: int
    stages: Stages
    cpu: Mapping[str, float]
    cpu_us_per_event: Mapping[str, float]


@dataclass(frozen=True)
class Ratio:
    stage: str
    pipeline: float
    baseline_name: str
    baseline: float

    @property
    def ratio(self) -> float:
        return self.pipeline / self.baseline if self.baseline else 0.0


@dataclass(frozen=True)
class E2EResult:
    run_id: str
    started_at: str
    machine: Machine
    settings: Mapping[str, Any]
    steps: list[StepResult]
    capacity: Capacity | None
    baselines: Mapping[str, float]
    ratios: list[Ratio]
    peak_rss_mb: Mapping[str, float]
    alerts_other: int
    notes: list[str]

    @property
    def max_sustained_rate(self) -> float | None:
        rates = [s.stored_rate for s in self.steps if s.sustained]
        return max(rates) if rates else None


ROLES = ("worker", "sink", "broker", "bench", "others")


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(p: Percentiles | None) -> str:
    return "-" if p is None else f"{p.p50:,.0f} / {p.p95:,.0f} / {p.p99:,.0f}"


def render(console: Console, result: E2EResult) -> None:
    m = result.machine
    console.print(
        f"[bold]auditstream bench e2e[/bold] run {result.run_id} at {result.started_at}: "
        f"{m.cpus} CPUs ({m.cpu_model}), {m.memory_gb:g} GB, Linux {m.kernel}, "
        f"Python {m.python}; load average before {m.load_average[0]:.2f}"
    )
    rates = Table(title="Fixed-rate steps: throughput (steady window, after warm-up)")
    for column in (
        "target/s", "produced/s", "stored/s", "normalize/s", "detect/s", "sink/s",
        "lag end: worker raw / worker norm. / sink", "sustained",
    ):  # fmt: skip
        rates.add_column(column, justify="right")
    for s in result.steps:
        lag = [s.lag.get(k) for k in ("worker/raw", "worker/normalized", "sink/normalized")]
        rates.add_row(
            _num(s.target_rate),
            _num(s.produced_rate),
            _num(s.stored_rate),
            _num(s.stages.normalize),
            _num(s.stages.detect),
            _num(s.stages.sink),
            " / ".join(_num(x.end if x else None) for x in lag),
            ("yes: " if s.sustained else "[red]no[/red]: ") + s.verdict,
        )
    console.print(rates)
    costs = Table(title="Fixed-rate steps: latency (ms, p50 / p95 / p99) and CPU")
    for column in (
        "target/s", "produce→normalized", "produce→stored", "produce→alert (alerts)",
        "CPU % worker / sink / broker / bench / others", "worker µs/event",
    ):  # fmt: skip
        costs.add_column(column, justify="right")
    for s in result.steps:
        alert = _pct(s.alert_latency) + (f" ({s.alert_latency.count})" if s.alert_latency else "")
        costs.add_row(
            _num(s.target_rate),
            _pct(s.normalized_latency),
            _pct(s.stored_latency),
            alert,
            " / ".join(_num(s.cpu.get(r)) for r in ROLES),
            _num(s.cpu_us_per_event.get("worker")),
        )
    console.print(costs)
    best = result.max_sustained_rate
    console.print(
        "Max sustained end to end: "
        + (f"[bold]{best:,.0f} events/s[/bold]" if best else "[red]no step sustained[/red]")
    )
    if result.capacity is not None:
        c = result.capacity
        console.print(
            f"Backlog of {c.events:,} events drained at: normalize {c.stages.normalize:,.0f}/s, "
            f"detect {c.stages.detect:,.0f}/s, sink {c.stages.sink:,.0f}/s; CPU % "
            + ", ".join(f"{r} {c.cpu.get(r, 0):.0f}" for r in ROLES)
            + "; worker "
            + _num(c.cpu_us_per_event.get("worker"))
            + " µs/event"
        )
    if result.ratios:
        ratios = Table(title="Stages against their baselines (same run)")
        for column in ("stage", "events/s", "baseline", "baseline events/s", "ratio"):
            ratios.add_column(column, justify="right")
        for r in result.ratios:
            ratios.add_row(
                r.stage, _num(r.pipeline), r.baseline_name, _num(r.baseline), f"{r.ratio:.3f}"
            )
        console.print(ratios)
    floor = framework_floor(result.baselines)
    if floor:
        console.print(floor)
    console.print(
        "Peak RSS MB: " + ", ".join(f"{k} {v:,.0f}" for k, v in result.peak_rss_mb.items())
    )
    for note in result.notes:
        console.print(f"note: {note}")


def framework_floor(baselines: Mapping[str, float]) -> str | None:
    """The stream framework's CPU per event before any work of ours, from the bare agents."""
    relay = baselines.get("faust_relay_us_per_event")
    consume = baselines.get("faust_consume_us_per_event")
    if not relay or not consume:
        return None
    return (
        f"Bare Faust agents, CPU per event: relay {relay:,.0f} µs, consume {consume:,.0f} µs; "
        "the Faust worker reads each normalized event once (the normalizer is its own "
        f"confluent-kafka process), so its framework floor is about {consume:,.0f} µs/event "
        f"(≤ {1e6 / consume:,.0f} events/s a core) before detecting, alerts or table changelogs"
    )


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(result: E2EResult) -> bytes:
    doc = orjson.loads(orjson.dumps(result, default=_default))
    doc["max_sustained_rate"] = result.max_sustained_rate
    doc["ratios"] = [
        {**r, "ratio": round(x.ratio, 4)} for r, x in zip(doc["ratios"], result.ratios, strict=True)
    ]
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
