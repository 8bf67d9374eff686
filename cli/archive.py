"""``auditstream archive drill``: the export-and-restore drill, its result on record.

Exports the tenant's last ``--days`` whole UTC days with their proof, checks the export
offline, restores it into a scratch store and compares counts and hashes
(``integrity/drill.py``). The result (pass or fail, with the counts) is recorded as an audit
event in the tenant's own log (``metadata.command`` = ``auditstream archive drill``, outcome
``success`` or ``failure``), so the next review and the next auditor see that it ran.
Exit codes: 0 passed, 1 failed, 2 could not run.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from auditstream.cli.render import table
from auditstream.cli.verify import EXIT_ERROR, EXIT_OK, EXIT_TAMPERED
from auditstream.config import ConfigError, Settings
from auditstream.reviews.report import DRILL_COMMAND

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@click.group()
def archive() -> None:
    """Archive drills: can a tenant's log be handed over and brought back intact?"""


@archive.command("drill")
@click.option("--tenant", required=True, help="The tenant whose log is drilled.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the export and the scratch store in this (new) directory.",
)
def drill_command(tenant: str, days: int, keep: Path | None) -> None:
    """Export, verify, restore into a scratch store, compare; record the result."""
    from auditstream.cli.export import write_tenant_export
    from auditstream.integrity import audit
    from auditstream.integrity.drill import drill
    from auditstream.producers.acknowledged import NotAcknowledged, send_acknowledged
    from auditstream.sinks import query
    from auditstream.sinks.store import StoreUnavailable

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        err.print("configuration error:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    if keep is not None and keep.exists():
        err.print(f"{escape(str(keep))} exists: give a new directory to keep the drill in")
        sys.exit(EXIT_ERROR)
    work = keep or Path(tempfile.mkdtemp(prefix="auditstream-drill-"))
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.now(UTC)
    lo = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        export = work / f"{tenant}-export.jsonl"
        summary = write_tenant_export(settings, tenant, lo, now, export)
        _, keys = audit.load_material(settings)
        result = drill(export, keys, work / "scratch")
    except (query.QueryError, StoreUnavailable, OSError, ValueError) as exc:
        err.print("drill could not run:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    console.print(
        table(
            f"drill of {tenant}, {lo:%Y-%m-%d} to {now:%Y-%m-%d}",
            ["exported", "restored", "read back", "left out (not yet signed)", "result"],
            [[result.exported, result.restored, result.read_back, summary.left_out,
              "PASS" if result.passed else "FAIL"]],
            numeric=[True, True, True, True],
        )
    )  # fmt: skip
    for finding in result.findings:
        console.print("  " + escape(finding))
    user = getpass.getuser()
    try:
        event_id = send_acknowledged(
            settings,
            "auditstream-drill",
            tenant_id=tenant,
            actor={"id": f"os:{user}@{socket.gethostname()}", "type": "system",
                   "display_name": user},
            action="export",
            resource={"type": "audit_log_archive", "id": f"{tenant}:{lo:%Y-%m-%d}:{days}d",
                      "name": f"export-and-restore drill, {days} days"},
            outcome="success" if result.passed else "failure",
            channel="cli",
            metadata={
                "command": DRILL_COMMAND,
                "from": f"{lo:%Y-%m-%d}",
                "to": f"{now:%Y-%m-%d}",
                "exported": result.exported,
                "restored": result.restored,
                "read_back": result.read_back,
                "findings": result.findings[:20],
            },
        )  # fmt: skip
        console.print(f"recorded as event {event_id} in {escape(tenant)}'s log")
    except NotAcknowledged as exc:
        err.print(f"the drill's result was NOT recorded: {escape(str(exc))}")
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if result.passed else EXIT_TAMPERED)
