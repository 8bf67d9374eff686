"""``auditstream simulate``: multi-tenant traffic with labelled attacks, through the SDK."""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from auditstream.cli.render import table
from auditstream.config import ConfigError, Settings
from auditstream.infra import topics
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.simulation import runner
from auditstream.simulation.labels import LabelWriter
from auditstream.simulation.plan import Plan, PlanConfig, fit_activity
from auditstream.simulation.scenarios import TYPES, ScenarioError


@click.command()
@click.option("--tenants", default=3, show_default=True, help="Simulated tenants.")
@click.option("--users", default=20, show_default=True, help="People per tenant.")
@click.option("--rate", default=500.0, show_default=True, help="Events per second (0: no limit).")
@click.option("--duration", type=float, help="Seconds to run: sizes the plan to rate x duration.")
@click.option("--count", type=int, help="About this many events (activity is scaled to fit).")
@click.option("--attacks", default=2, show_default=True, help="Scenarios per attack type.")
@click.option("--lookalikes", default=2, show_default=True, help="Scenarios per look-alike type.")
@click.option(
    "--type", "types", multiple=True, type=click.Choice(sorted(TYPES)), help="Only these types."
)
@click.option("--seed", default=7, show_default=True)
@click.option("--history-days", default=28, show_default=True, help="Days to learn baselines.")
@click.option("--attack-days", default=7, show_default=True, help="Final days with scenarios.")
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    help="Anchor of the timeline (default: now), e.g. 2026-11-20T12:00+00:00.",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("labels.jsonl"),
    show_default=True,
    help="Ground-truth labels, one JSON line per scenario.",
)
@click.option(
    "--detectors-config-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the detector TOML this org's operators would use (allow-lists, zones).",
)
def simulate(
    tenants: int,
    users: int,
    rate: float,
    duration: float | None,
    count: int | None,
    attacks: int,
    lookalikes: int,
    types: tuple[str, ...],
    seed: int,
    history_days: int,
    attack_days: int,
    end: datetime | None,
    labels_path: Path,
    detectors_config_out: Path | None,
) -> None:
    """Publish simulated audit traffic with injected attacks to the raw topic.

    Weeks of history (event time) are compressed into the run, so detectors that learn
    baselines have them; attacks and benign look-alikes fall in the last --attack-days.
    Start the broker and the pipeline first (`auditstream kafka up`, `auditstream worker`,
    `auditstream sink`), then run the worker with --detectors-config-out's file as
    AUDITSTREAM_DETECTORS_CONFIG to honour the org's allow-lists.
    """
    console = Console()
    if duration is not None and count is not None:
        console.print("[red]error:[/red] give --duration or --count, not both")
        sys.exit(2)
    if duration is not None and rate <= 0:
        console.print("[red]error:[/red] --duration needs a --rate above 0 (or use --count)")
        sys.exit(2)
    try:
        settings = Settings.from_env()
        run_tag = uuid.uuid4().hex[:8]
        config = PlanConfig(
            tenants=tenants,
            users=users,
            seed=seed,
            history_days=history_days,
            attack_days=attack_days,
            attacks=attacks,
            lookalikes=lookalikes,
            types=types,
            end=end,
            run_tag=run_tag,
        )
        if config.end is None:
            config = replace(config, end=config.timeline().end)  # one anchor for every pass
        target = count if count is not None else round(rate * duration) if duration else None
        with console.status("Planning..."):
            if target is not None:
                config = fit_activity(config, target)
            total = sum(1 for _ in Plan(config).events())
            plan = Plan(config)
    except (ScenarioError, ConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    bootstrap = settings.kafka.bootstrap_servers
    try:
        topics.ensure_topics(
            bootstrap, settings.topics, security=settings.kafka.security.librdkafka()
        )
    except Exception as exc:  # confluent-kafka raises KafkaException or a timeout
        console.print(
            f"[red]error:[/red] Kafka at {bootstrap} does not answer ({exc}); start it with "
            "`auditstream kafka up` or set KAFKA_BOOTSTRAP_SERVERS"
        )
        sys.exit(1)
    if detectors_config_out is not None:
        detectors_config_out.write_text(plan.detector_config())
    timeline = plan.timeline
    console.print(
        f"{tenants} tenants x {users} users, {total:,} events over {timeline.days} days of event "
        f"time ({timeline.start:%Y-%m-%d %H:%M} .. {timeline.end:%Y-%m-%d %H:%M} UTC; scenarios "
        f"from {timeline.attack_start:%Y-%m-%d %H:%M}), {len(plan.labels)} scenarios, to "
        f"{settings.topics.raw} at {rate:g}/s (run {run_tag}: metadata.sim_run)"
    )
    producer_config = ProducerConfig.from_env(topic=settings.topics.raw)
    with (
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as progress,
        LabelWriter(labels_path) as out,
        AuditProducer(producer_config) as audit,
    ):
        task = progress.add_task("Publishing through the SDK", total=total)
        result = runner.run(
            plan.events(),
            audit.emit,
            plan.labels,
            runner.Pacer(rate),
            on_label=out.write,
            on_progress=lambda n: progress.update(task, completed=n),
        )
        undelivered = audit.flush(60)
    by_type: dict[str, int] = {}
    for label in result.labels:
        by_type[label.type] = by_type.get(label.type, 0) + 1
    console.print(
        table(
            f"Scenarios written to {labels_path}",
            ["type", "kind", "scenarios"],
            [[t, TYPES[t].kind.value, n] for t, n in sorted(by_type.items())],
            [False, False, True],
        )
    )
    console.print(
        f"Sent {result.events:,} events in {result.seconds:.1f} s ({result.rate:,.0f}/s); "
        f"{plan.stats.actor_days:,} active actor-days."
        + (
            f" Stopped early: {result.incomplete} scenario(s) unfinished, not labelled."
            if result.stopped
            else ""
        )
    )
    if undelivered:
        console.print(
            f"[red]{undelivered} events are not yet delivered[/red] (kept in the SDK spool; "
            "they are sent on the next start)"
        )
        sys.exit(1)
