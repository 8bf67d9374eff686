"""``auditstream ingest --format FORMAT FILE|-``: real logs through a source adapter and the SDK."""

from __future__ import annotations

import sys
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import orjson
from rich.console import Console
from rich.markup import escape

from auditstream.config import ConfigError, Settings
from auditstream.producers import AuditProducer, InvalidEvent, ProducerConfig
from auditstream.sources import FORMATS, Options


def _zone(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not an IANA time zone") from None
    return value


@click.command("ingest")
@click.option(
    "--format", "fmt", required=True, type=click.Choice(sorted(FORMATS)), help="The log format."
)
@click.option("--tenant", required=True, help="Tenant id the events belong to.")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    callback=_zone,
    help="Zone of timestamps without an offset (classic syslog).",
)
@click.option("--dry-run", is_flag=True, help="Print the mapped events (JSON Lines), send nothing.")
@click.argument("source", type=click.File("r", encoding="utf-8", errors="replace"))
def ingest(fmt: str, tenant: str, timezone: str, dry_run: bool, source: IO[str]) -> None:
    """Map a vendor's log (FILE, or - for stdin) to audit events and send them to the raw topic.

    Formats: sshd (Linux auth.log / secure / journalctl short-iso), okta (System Log API),
    github (audit log API or stream), google-login (Workspace Reports API, login),
    cloudtrail (log files or lookup-events). Event ids come from the records, so ingesting
    a file twice stores each event once. Mapping tables: docs/adapters.md.
    """
    console, err = Console(), Console(stderr=True)
    parsed = FORMATS[fmt](source.read(), Options(tenant_id=tenant, timezone=timezone))
    skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(parsed.skipped.items()))
    if dry_run:
        for event in parsed.events:
            sys.stdout.write(orjson.dumps(event, default=str).decode() + "\n")
        err.print(escape(f"{len(parsed.events)} events mapped; skipped: {skipped or 'none'}"))
        return
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        err.print("[red]configuration error:[/red]", escape(str(exc)))
        sys.exit(2)
    refused: dict[str, int] = {}
    sent = 0
    with AuditProducer(ProducerConfig.from_env(topic=settings.topics.raw)) as audit:
        for event in parsed.events:
            try:
                audit.emit(**event)
                sent += 1
            except InvalidEvent as exc:
                key = "; ".join(str(p) for p in exc.problems)[:120]
                refused[key] = refused.get(key, 0) + 1
        undelivered = audit.flush(60)
    console.print(
        escape(
            f"{sent} events sent to {settings.topics.raw} ({fmt}); "
            f"skipped: {skipped or 'none'}; refused by the schema: {sum(refused.values())}"
        )
    )
    for reason, n in refused.items():
        err.print(escape(f"  refused {n}: {reason}"))
    if undelivered:
        err.print(
            escape(
                f"{undelivered} events are not in Kafka yet (is the broker up?); they wait in "
                "the producer's spool"
            )
        )
        sys.exit(1)
