"""``auditstream export`` / ``auditstream verify-export``: a tenant's events with their proof,
and the offline check an auditor runs with only the public key."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from auditstream.cli.verify import EXIT_ERROR, EXIT_OK, EXIT_TAMPERED, parse_time
from auditstream.config import ConfigError, Settings
from auditstream.integrity.export import ExportSummary

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def write_tenant_export(
    settings: Settings, tenant: str, lo: datetime | None, hi: datetime | None, file: Path
) -> ExportSummary:
    """The tenant's events for the whole UTC days from ``lo`` to ``hi``, with their proof,
    into ``file`` (0600). Raises the store's errors."""
    from auditstream.integrity import audit
    from auditstream.integrity.export import write_export
    from auditstream.integrity.verify import read_records
    from auditstream.sinks import query

    start, end = audit.day_bounds(lo, hi, datetime.now(UTC))
    docs, keys = audit.load_material(settings)
    records = []
    cursor = start
    while cursor < end:
        step = min(end, cursor + timedelta(days=audit.WINDOW_DAYS))
        records.extend(
            read_records(
                lambda sql: query.run(settings.clickhouse, sql).rows,
                settings.clickhouse.database,
                tenant,
                cursor,
                step,
                query.literal,
            )
        )
        cursor = step
    days = (start.strftime("%Y-%m-%d"), (end - timedelta(days=1)).strftime("%Y-%m-%d"))
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        return write_export(out, tenant, days, records, docs, keys)


@click.command("export")
@click.option("--tenant", required=True, help="The tenant whose events are exported.")
@click.option("--from", "from_time", required=True, help="First UTC day (ISO 8601).")
@click.option("--to", "to_time", required=True, help="End (ISO 8601; whole days).")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def export_command(tenant: str, from_time: str, to_time: str, file: Path) -> None:
    """Write FILE: the tenant's events for whole UTC days (JSON Lines) with record hashes,
    chain links, the covering signed checkpoints and their key ids."""
    from auditstream.sinks import query
    from auditstream.sinks.store import StoreUnavailable

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        err.print("configuration error:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    try:
        summary = write_tenant_export(
            settings, tenant, parse_time(from_time), parse_time(to_time), file
        )
    except (query.QueryError, StoreUnavailable, OSError, ValueError) as exc:
        err.print("export failed:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    console.print(
        f"{escape(str(file))}: {summary.records} records in {summary.chains} chains, "
        f"{summary.checkpoints} checkpoints"
        + (
            f"; {summary.left_out} records not yet checkpointed left out"
            if summary.left_out
            else ""
        )
    )


@click.command("verify-export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The public key(s) you trust, PEM (`auditstream keys export`).",
)
def verify_export_command(file: Path, public_key: Path) -> None:
    """Check an export offline: every record hash, chain link and checkpoint signature.
    Exit codes: 0 OK, 1 a record removed, altered, added or moved, 2 error."""
    from auditstream.integrity.export import ExportError, verify_export
    from auditstream.integrity.keys import KeyFileError, load_public_keys

    try:
        keys = load_public_keys(public_key.read_text())
        with file.open("rb") as lines:
            report = verify_export(lines, keys)
    except (ExportError, KeyFileError, OSError, ValueError, KeyError, TypeError) as exc:
        err.print("verify-export failed:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    findings = report.all_findings()
    console.print(
        f"{len(report.chains)} chains, {report.total('records')} records, "
        f"{report.total('verified')} verified"
        + (f", {report.total('expired')} expired" if report.total("expired") else "")
    )
    for f in findings:
        console.print("  " + escape(f.line()))
    console.print("OK" if not findings else f"FAILED: {len(findings)} findings")
    sys.exit(EXIT_TAMPERED if findings else EXIT_OK)
