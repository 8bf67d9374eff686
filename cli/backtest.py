"""``auditstream backtest``: what the detectors would have raised over stored events."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.markup import escape

from auditstream.cli.render import table
from auditstream.config import ConfigError, Settings

_WHEN = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"])


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.command("backtest")
@click.option("--from", "start", type=_WHEN, help="Start (UTC unless an offset is given).")
@click.option("--to", "end", type=_WHEN, help="End, exclusive (default: now).")
@click.option("--days", type=float, default=30.0, show_default=True, help="Without --from.")
@click.option("--rules", "rules", multiple=True, help="Only these rules (repeatable).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Detector TOML to try (default: AUDITSTREAM_DETECTORS_CONFIG, else the defaults).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON Lines.")
@click.option("--show", default=20, show_default=True, help="Alerts listed in the table.")
def backtest(
    start: datetime | None,
    end: datetime | None,
    days: float,
    rules: tuple[str, ...],
    config_path: Path | None,
    as_json: bool,
    show: int,
) -> None:
    """Run the detectors over events stored in ClickHouse and report what they would have
    raised, without publishing anything: tune a rule on last month before enabling it."""
    from auditstream.detectors import config as detector_config
    from auditstream.detectors import replay
    from auditstream.detectors.engine import DetectionEngine
    from auditstream.detectors.registry import default_detectors
    from auditstream.sinks import query, store

    console, err = Console(), Console(stderr=True)
    try:
        settings = Settings.from_env()
        detectors = default_detectors()
        unknown = sorted(set(rules) - {d.name for d in detectors})
        if unknown:
            raise detector_config.DetectorConfigError(f"unknown rule(s) {unknown}")
        path = config_path or settings.detectors_config
        engine = DetectionEngine(detectors, detector_config.load(path, detectors))
    except (ConfigError, detector_config.DetectorConfigError) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(2)
    until = _utc(end) if end else datetime.now(UTC)
    since = _utc(start) if start else until - timedelta(days=days)

    def rows(sql: str) -> list[list[object]]:
        return query.run(settings.clickhouse, sql).rows

    try:
        with console.status("Replaying stored events through the detectors..."):
            result = replay.run(
                engine,
                replay.stored_events(rows, since, until),
                rules,
                settings.topics.partitions,
            )
    except (query.QueryError, store.StoreUnavailable) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    if as_json:
        for alert in result.alerts:
            sys.stdout.write(orjson.dumps(alert.model_dump(mode="json")).decode() + "\n")
        return
    console.print(
        escape(
            f"{result.events:,} stored events from {since:%Y-%m-%d %H:%M} to "
            f"{until:%Y-%m-%d %H:%M} UTC: {len(result.alerts)} alerts"
        )
    )
    if result.by_rule:
        console.print(
            table(
                "Alerts by rule",
                ["rule", "alerts"],
                [[r, n] for r, n in sorted(result.by_rule.items())],
                [False, True],
            )
        )
        console.print(
            table(
                f"First {min(show, len(result.alerts))} alerts",
                ["window start (UTC)", "rule", "severity", "tenant", "subject", "title"],
                [
                    [
                        f"{a.window_start:%Y-%m-%d %H:%M}",
                        a.rule,
                        a.severity.value,
                        a.tenant_id,
                        a.subject,
                        a.title,
                    ]
                    for a in result.alerts[:show]
                ],
                [False] * 6,
            )
        )
