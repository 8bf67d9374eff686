"""The e2e report: the table shows what was measured, the JSON holds all of it."""

from __future__ import annotations

import dataclasses

import orjson
from rich.console import Console

from auditstream.bench.lag import LagSummary
from auditstream.bench.latency import Percentiles
from auditstream.bench.report import (
    Capacity,
    E2EResult,
    Machine,
    Ratio,
    Stages,
    StepResult,
    framework_floor,
    render,
    to_json,
)


def step(number: int, rate: float, sustained: bool) -> StepResult:
    return StepResult(
        step=number,
        target_rate=rate,
        produced_rate=rate,
        skipped=0,
        window_seconds=50.0,
        stored_rate=rate * 0.99 if sustained else rate * 0.5,
        stored_fraction=1.0,
        stages=Stages(rate, rate, rate),
        lag={"worker/raw": LagSummary(10, 20, 900, 1.5), "sink/normalized": LagSummary(0, 5, 7, 0)},
        sustained=sustained,
        verdict="lag flat" if sustained else "lag grows: worker/raw",
        stored_latency=Percentiles(100, 610.0, 1020.0, 1180.5, 1300.0),
        normalized_latency=Percentiles(100, 12.0, 30.0, 45.0, 60.0),
        alert_latency=Percentiles(9, 95.0, 140.0, 151.2, 152.0) if sustained else None,
        bursts=10,
        cpu={"worker": 61.0, "sink": 9.5, "broker": 20.0, "bench": 8.0, "others": 3.0},
        cpu_us_per_event={"worker": 305.0},
    )


def result() -> E2EResult:
    return E2EResult(
        run_id="abc123",
        started_at="2026-11-22T03:00:00+00:00",
        machine=Machine(2, "AMD EPYC", 23.5, "6.1", "3.11.7", (0.5, 0.4, 0.3), {"chdb": "4.4.0"}),
        settings={"rates": [2000.0, 5000.0]},
        steps=[step(1, 2000.0, True), step(2, 5000.0, False)],
        capacity=Capacity(
            100_000, Stages(7600.0, 6200.0, 5300.0), {"worker": 96.0}, {"worker": 170.0}
        ),
        baselines={"consume_raw": 350_000, "insert_rows": 56_000},
        ratios=[Ratio("sink", 5300.0, "direct batched insert", 56_000.0)],
        peak_rss_mb={"worker": 153.0, "sink": 448.0},
        alerts_other=3,
        notes=["a note"],
    )


def test_render_shows_steps_verdicts_ratios_and_machine() -> None:
    console = Console(record=True, width=250)
    render(console, result())
    text = console.export_text()
    assert "2 CPUs (AMD EPYC)" in text
    assert "2,000" in text
    assert "5,000" in text
    assert "lag grows: worker/raw" in text
    assert "610 / 1,020 / 1,180" in text  # produce -> stored p50 / p95 / p99
    assert "95 / 140 / 151 (9)" in text  # produce -> alert, with the number of alerts
    assert "Max sustained end to end: 1,980 events/s" in text
    assert "normalize 7,600/s" in text
    assert "0.095" in text  # 5300 / 56000
    assert "note: a note" in text


def test_json_has_everything_and_the_derived_figures() -> None:
    doc = orjson.loads(to_json(result()))
    assert doc["max_sustained_rate"] == 1980.0
    assert doc["machine"]["cpus"] == 2
    assert doc["steps"][0]["stored_latency"]["p99"] == 1180.5
    assert doc["steps"][1]["alert_latency"] is None
    assert doc["steps"][0]["lag"]["worker/raw"]["max"] == 900
    assert doc["ratios"][0]["ratio"] == round(5300 / 56000, 4)
    assert doc["capacity"]["stages"]["sink"] == 5300.0


def test_no_sustained_step() -> None:
    r = result()
    r.steps.pop(0)
    console = Console(record=True, width=250)
    render(console, r)
    assert "no step sustained" in console.export_text()
    assert orjson.loads(to_json(r))["max_sustained_rate"] is None


def test_framework_floor_is_the_bare_consuming_agents_cost_and_is_shown() -> None:
    r = dataclasses.replace(
        result(),
        baselines={
            **result().baselines,
            "faust_relay_us_per_event": 110.0,
            "faust_consume_us_per_event": 60.0,
        },
    )
    line = framework_floor(r.baselines)
    assert line is not None
    assert "relay 110 µs, consume 60 µs" in line
    assert "about 60 µs/event (≤ 16,667 events/s a core)" in line
    console = Console(record=True, width=400)
    render(console, r)
    assert "about 60 µs/event" in console.export_text()


def test_no_framework_floor_without_the_faust_baselines() -> None:
    assert framework_floor({"consume_raw": 350_000}) is None
    console = Console(record=True, width=250)
    render(console, result())
    assert "Bare Faust agents" not in console.export_text()
