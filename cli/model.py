"""``auditstream model``: train the anomaly model from stored history, inspect a model file."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from auditstream.config import ConfigError, Settings

if TYPE_CHECKING:
    from rich.table import Table

    from auditstream.detectors.anomaly.model import ModelHeader
    from auditstream.detectors.anomaly.training import TrainingParams

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)


def default_path(settings: Settings, now: datetime) -> Path:
    return settings.home / "models" / f"anomaly-{now:%Y%m%dT%H%M%SZ}.model"


def run_train(
    settings: Settings,
    params: TrainingParams,
    out: Path | None,
    console: Console,
    now: datetime | None = None,
) -> Path:
    """Train from the store and write the model file; prints progress and a summary.

    Raises ``QueryError`` / ``StoreUnavailable`` (the store) or ``TrainingError``.
    """
    from auditstream.detectors.anomaly import model, training
    from auditstream.sinks import query

    now = now or datetime.now(UTC)
    path = out or default_path(settings, now)

    def rows(sql: str) -> list[list[Any]]:
        return query.run(settings.clickhouse, sql).rows

    with console.status("Training the anomaly model...") as status:
        fitted = training.train(rows, params, now=now, on_step=lambda s: status.update(s + "..."))
        status.update(f"writing {path}...")
        header = model.save(fitted, path)
    console.print(summary_table(header, path, title="Trained the anomaly model"))
    console.print(
        f"Score the stream with it: [bold]AUDITSTREAM_ANOMALY_MODEL={path}[/bold], "
        "then restart the worker."
    )
    return path


def summary_table(header: ModelHeader, path: Path, title: str) -> Table:
    from rich.table import Table

    size = path.stat().st_size if path.exists() else 0
    rows = [
        ("events", f"{header.events:,}"),
        ("actors", f"{header.actors:,}"),
        ("tenants", f"{header.tenants:,}"),
        ("windows", f"{header.windows:,} actor-hours"),
        ("features", f"{len(header.features)}: {', '.join(header.features)}"),
        ("trained on", f"{header.trained_from} .. {header.trained_to}"),
        ("contamination", f"{header.contamination:g}"),
        (
            "alerts when",
            f"isolation score > {header.threshold:.4f}, or a feature > "
            f"{header.excess_threshold:.1f} robust SD above usual; "
            f"windows of >= {header.min_events} events",
        ),
        ("forest", f"{header.n_estimators} trees x {header.max_samples} samples"),
        ("versions", f"format {header.format_version}, scikit-learn {header.sklearn_version}"),
        ("file", f"{path} ({size / 1024:,.0f} KiB, sha256 {header.payload_sha256[:12]}...)"),
    ]
    out = Table(title=title, title_justify="left", show_header=False)
    out.add_column(style="bold")
    out.add_column()
    for name, value in rows:
        out.add_row(name, value)
    return out


@click.group()
def model() -> None:
    """The learned anomaly model: train it from stored history, inspect a model file."""


@model.command("train")
@click.option(
    "--days", default=30.0, show_default=True, help="Days of history, up to the last full hour."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Model file to write. [default: AUDITSTREAM_HOME/models/anomaly-<time>.model]",
)
@click.option(
    "--contamination",
    default=0.001,
    show_default=True,
    help="Share of ordinary actor-hours expected to alert: sets the threshold.",
)
@click.option("--min-events", default=5, show_default=True, help="Smaller windows never alert.")
@click.option("--seed", default=0, show_default=True)
def train(days: float, out: Path | None, contamination: float, min_events: int, seed: int) -> None:
    """Train an IsolationForest on per-actor hourly windows of the stored events."""
    from auditstream.detectors.anomaly.training import TrainingError, TrainingParams
    from auditstream.sinks.query import QueryError
    from auditstream.sinks.store import StoreUnavailable

    settings = _settings()
    try:
        params = TrainingParams(
            days=days, contamination=contamination, min_events=min_events, seed=seed
        )
        run_train(settings, params, out, console)
    except TrainingError as exc:
        err.print(f"[red]training failed:[/red] {exc}")
        sys.exit(1)
    except (QueryError, StoreUnavailable) as exc:
        err.print(f"[red]reading the history failed:[/red] {exc}")
        sys.exit(1)


@model.command("info")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def info(path: Path) -> None:
    """Describe a model file (reads its header and digest only; never unpickles it)."""
    from auditstream.cli.render import table
    from auditstream.detectors.anomaly.model import ModelError, check_compatible, payload_intact
    from auditstream.detectors.anomaly.model import read_header as read

    try:
        header = read(path)
        intact = payload_intact(path)
    except ModelError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    console.print(summary_table(header, path, title=str(path)))
    console.print(
        table(
            "Training distribution (raw values per actor-hour)",
            ["feature", "median", "p90", "p99", "max"],
            [
                (b.feature, *(f"{v:.3g}" for v in (b.median, b.p90, b.p99, b.max)))
                for b in header.baselines
            ],
            numeric=[False, True, True, True, True],
        )
    )
    problems = []
    if not intact:
        problems.append("the payload does not match its sha256 (corrupted or truncated)")
    try:
        check_compatible(header, path)
    except ModelError as exc:
        problems.append(str(exc))
    for problem in problems:
        console.print(f"[red]not usable:[/red] {problem}")
    if not problems:
        console.print("[green]usable[/green] by this auditstream")
    sys.exit(1 if problems else 0)
