"""``auditstream detectors``: what runs, with which settings, and checking a config file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from auditstream.detectors import config as detector_config
from auditstream.detectors.registry import default_detectors

console = Console()


@click.group()
def detectors() -> None:
    """The detectors and their per-tenant configuration."""


def _compact(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


@detectors.command("list")
@click.option("--config", "path", type=click.Path(path_type=Path), help="A TOML config file.")
@click.option("--tenant", help="Show the settings this tenant gets.")
def list_detectors(path: Path | None, tenant: str | None) -> None:
    """Every detector, its rule, scope, MITRE technique and effective settings."""
    found = default_detectors()
    try:
        loaded = detector_config.load(path, found)
    except detector_config.DetectorConfigError as exc:
        console.print("[red]invalid detector config:[/red]", escape(str(exc)))
        sys.exit(2)
    table = Table(header_style="bold", title=f"Detectors for tenant {tenant or '(defaults)'}")
    for name in ("rule", "scope", "MITRE", "enabled", "settings"):
        table.add_column(name, overflow="fold")
    for detector in found:
        settings = loaded.settings(tenant or "", detector.name)
        values = settings.model_dump(exclude={"enabled"})
        shown = "\n".join(f"{k} = {_compact(v)}" for k, v in values.items())
        table.add_row(
            detector.name,
            detector.scope.value,
            "\n".join(detector.mitre),
            "yes" if settings.enabled else "[dim]no[/dim]",
            shown,
        )
    console.print(table)


@detectors.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def check(path: Path) -> None:
    """Validate a detector config file the way the worker does at start-up."""
    try:
        loaded = detector_config.load(path, default_detectors())
    except detector_config.DetectorConfigError as exc:
        console.print("[red]invalid:[/red]", escape(str(exc)))
        sys.exit(2)
    console.print(f"{path}: valid ({len(loaded.tenants)} tenant sections)")
