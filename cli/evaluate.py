"""``auditstream eval``: detection quality on a labelled simulated mix, as tables and JSON."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from auditstream.cli.render import table
from auditstream.config import ConfigError, Settings
from auditstream.simulation.evaluate import EvalConfig, EvalError, EvalResult, run
from auditstream.simulation.metrics import TARGET
from auditstream.simulation.plan import PlanConfig
from auditstream.simulation.scenarios import TYPES, ScenarioError


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(console: Console, result: EvalResult) -> None:
    report = result.report
    timed = not result.config.in_process
    rows = []
    for t in report.attacks:
        rows.append(
            [
                t.type,
                t.labels,
                t.detected,
                t.hits,
                t.false_positives,
                _num(t.precision),
                _num(t.recall),
                _num(t.f1),
                _num(t.latency_p50_s if timed else None, 1),
                _num(t.latency_p95_s if timed else None, 1),
                "[green]yes[/green]" if t.meets_target else "[red]no[/red]",
            ]
        )
    console.print(
        table(
            f"Attacks: precision (P) and recall (R) target >= {TARGET}; latency in seconds",
            ["type", "n", "found", "alerts", "FP", "P", "R", "F1", "p50", "p95", "ok"],
            rows,
            [False, True, True, True, True, True, True, True, True, True, False],
        )
    )
    rows = [
        [
            t.type,
            t.rule,
            t.labels,
            t.quiet,
            ", ".join(f"{r}: {n}" for r, n in t.alerts.items()) or "-",
        ]
        for t in report.lookalikes
    ]
    console.print(
        table(
            "Benign look-alikes (must not trigger the rule they imitate)",
            ["type", "imitates", "injected", "quiet", "alerts on them"],
            rows,
            [False, False, True, True, False],
        )
    )
    if result.samples:
        console.print(
            table(
                "Real-format samples through their adapter and the detectors (sources/samples/)",
                [
                    "format",
                    "events",
                    "skipped",
                    "expected alerts",
                    "raised",
                    "missed",
                    "unexpected",
                ],
                [
                    [
                        r.format,
                        r.events,
                        r.skipped,
                        len(r.expected),
                        len(r.raised),
                        ", ".join(f"{a} {b}" for a, b in sorted(r.missed)) or "-",
                        ", ".join(f"{a} {b}" for a, b in sorted(r.unexpected)) or "-",
                    ]
                    for r in result.samples
                ],
                [False, True, True, True, True, False, False],
            )
        )
    rate = report.per_10k_actor_days
    by_rule = ", ".join(f"{r}: {n}" for r, n in report.false_positives_by_rule.items()) or "none"
    side = ", ".join(f"{r}: {n}" for r, n in report.side_effects_by_rule.items()) or "none"
    console.print(
        f"Benign population: {report.actor_days:,} actor-days, {report.false_positives} "
        f"alerts ({by_rule}) = [bold]{_num(rate, 1)} per 10k actor-days[/bold]\n"
        f"Side effects of attacks (tolerated, not scored): {side}"
    )
    if report.unexplained:
        console.print("[dim]Alerts on background activity (first ones):[/dim]")
        for a in report.unexplained[:8]:
            console.print(f"  [dim]{a.rule:<22} {a.tenant_id:<10} {a.title}[/dim]")
    if result.phases:
        published = "; ".join(
            f"{name.split(' (')[0].lower()}: {n:,} events in {sec:.1f} s "
            f"({n / max(sec, 1e-9):,.0f}/s)"
            for name, n, sec in result.phases
        )
    else:
        published = (
            f"{result.events:,} events through the in-process engine in {result.emit_seconds:.1f} s"
        )
    stored = (
        f", {result.alerts_stored} stored in ClickHouse" if result.alerts_stored is not None else ""
    )
    console.print(
        f"{published}. {report.alerts} alerts{stored}; total {result.total_seconds:.0f} s.\n"
        f"Run {result.run_id}: {result.home} (labels.jsonl, detectors.toml, report.json, logs)"
    )
    missed = [t.type for t in report.attacks if not t.meets_target]
    if missed:
        console.print(f"[yellow]Below target: {', '.join(missed)}[/yellow]")
    else:
        console.print("[green]Every attack type meets the target.[/green]")


@click.command("eval")
@click.option("--tenants", default=3, show_default=True, help="Simulated tenants.")
@click.option("--users", default=30, show_default=True, help="People per tenant.")
@click.option("--history-days", default=28, show_default=True, help="Days to learn baselines.")
@click.option("--attack-days", default=7, show_default=True, help="Final days with scenarios.")
@click.option("--attacks", default=10, show_default=True, help="Scenarios per attack type.")
@click.option("--lookalikes", default=10, show_default=True, help="Scenarios per look-alike type.")
@click.option(
    "--type", "types", multiple=True, type=click.Choice(sorted(TYPES)), help="Only these types."
)
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    help="Anchor of the timeline (default: now), e.g. 2026-11-20T12:00+00:00.",
)
@click.option(
    "--rate", default=250.0, show_default=True, help="Events/s in the attack period (0: no limit)."
)
@click.option(
    "--history-rate", default=0.0, show_default=True, help="Events/s in the history (0: no limit)."
)
@click.option("--partitions", type=int, help="Partitions of the run's topics.")
@click.option(
    "--detectors-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Detector TOML to use instead of the one generated for the simulated org.",
)
@click.option("--in-process", is_flag=True, help="Run the detectors here, without Kafka (fast).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON here.")
@click.option("--keep-kafka", is_flag=True, help="Leave a broker this command started running.")
@click.option("--keep-topics", is_flag=True, help="Keep the run's topics afterwards.")
@click.option("--strict", is_flag=True, help="Exit 3 when a type misses the target.")
def evaluate(
    tenants: int,
    users: int,
    history_days: int,
    attack_days: int,
    attacks: int,
    lookalikes: int,
    types: tuple[str, ...],
    seed: int,
    end: datetime | None,
    rate: float,
    history_rate: float,
    partitions: int | None,
    detectors_config: Path | None,
    in_process: bool,
    out: Path | None,
    keep_kafka: bool,
    keep_topics: bool,
    strict: bool,
) -> None:
    """Replay a labelled simulated mix through the pipeline and score the alerts.

    The history (weeks of event time, for the baselines) goes in as fast as allowed; once
    the worker has caught up, the attack period follows at --rate. Per attack type:
    precision, recall, F1 and detection latency (SDK accept -> alert on the alert topic,
    p50 / p95); per benign look-alike: how many stayed quiet; and alerts per 10k benign
    actor-days. The JSON report goes to the run's folder (and --out).
    """
    console = Console()
    try:
        settings = Settings.from_env()
        config = EvalConfig(
            plan=PlanConfig(
                tenants=tenants,
                users=users,
                seed=seed,
                history_days=history_days,
                attack_days=attack_days,
                attacks=attacks,
                lookalikes=lookalikes,
                types=types,
                end=end,
            ),
            rate=rate,
            history_rate=history_rate,
            partitions=partitions,
            detectors_config=detectors_config,
            in_process=in_process,
            keep_kafka=keep_kafka,
            keep_topics=keep_topics,
        )
        with _Bars(console) as bars:
            result = run(settings, config, bars.update, bars.status)
    except (EvalError, ScenarioError, ConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    render(console, result)
    doc = orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2)
    (result.home / "report.json").write_bytes(doc)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(doc)
        console.print(f"Report: {out}")
    if strict and not result.report.meets_target:
        sys.exit(3)


class _Bars:
    """Progress bars per step, plus a status line, for the steps ``run`` reports."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description:<30}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, step: str, done: int, total: int | None) -> None:
        task = self.tasks.get(step)
        if task is None:
            task = self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(task, completed=done, total=total)

    def status(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/dim]")
