"""``auditstream alerts tail``: alerts as they arrive, as a readable table."""

from __future__ import annotations

import uuid
from datetime import datetime

import click
import orjson
from confluent_kafka import Consumer, KafkaException
from rich.console import Console
from rich.table import Table

from auditstream.config import Settings

SEVERITY_ORDER = ["low", "medium", "high", "critical"]
WIDTHS: tuple[tuple[str, int | None], ...] = (
    ("detected (UTC)", 19),
    ("severity", 8),
    ("rule", 22),
    ("tenant", 12),
    ("subject", 18),
    ("title", None),
)
STYLE = {"low": "dim", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}


def _row_table() -> Table:
    table = Table(header_style="bold", show_edge=False, pad_edge=False)
    # Fixed widths: each alert prints as its own one-row table, and the columns must line up.
    for name, width in WIDTHS:
        table.add_column(name, width=width, no_wrap=width is not None, overflow="ellipsis")
    return table


def _time(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def alerts() -> None:
    """The security alert stream."""


@alerts.command("tail")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest retained alert.")
@click.option("--tenant", help="Only this tenant.")
@click.option("--min-severity", type=click.Choice(SEVERITY_ORDER), default="low")
@click.option("--rule", "rules", multiple=True, help="Only these rules (repeatable).")
@click.option("--explain", is_flag=True, help="Print each alert's explanation under it.")
@click.option("--limit", type=int, default=0, help="Stop after this many alerts (0: never).")
@click.option("--idle-exit", type=float, default=0.0, help="Stop after this many idle seconds.")
def tail(
    from_beginning: bool,
    tenant: str | None,
    min_severity: str,
    rules: tuple[str, ...],
    explain: bool,
    limit: int,
    idle_exit: float,
) -> None:
    """Follow the alert topic (Ctrl-C to stop). Reads without joining any real group."""
    settings = Settings.from_env()
    console = Console()
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"auditstream-tail-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
        }
    )
    consumer.subscribe([settings.topics.alerts])
    floor = SEVERITY_ORDER.index(min_severity)
    console.print(
        f"[dim]following {settings.topics.alerts} on {settings.kafka.bootstrap_servers}; "
        "Ctrl-C to stop[/dim]"
    )
    shown, idle = 0, 0.0
    try:
        while not limit or shown < limit:
            msg = consumer.poll(0.5)
            if msg is None:
                idle += 0.5
                if idle_exit and idle >= idle_exit:
                    break
                continue
            idle = 0.0
            if msg.error():
                raise KafkaException(msg.error())
            alert = orjson.loads(msg.value() or b"{}")
            if tenant and alert.get("tenant_id") != tenant:
                continue
            if rules and alert.get("rule") not in rules:
                continue
            severity = alert.get("severity", "low")
            if SEVERITY_ORDER.index(severity) < floor:
                continue
            table = _row_table()
            table.show_header = shown == 0
            table.add_row(
                _time(alert["detected_at"]),
                f"[{STYLE.get(severity, '')}]{severity}[/]",
                alert["rule"],
                alert["tenant_id"],
                alert["subject"],
                alert["title"],
            )
            console.print(table)
            if explain:
                console.print(f"  [dim]{alert['explanation']}[/dim]")
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
