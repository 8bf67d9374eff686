"""``auditstream status``: processes, lag, flow, dead letters and the store, at a glance."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.text import Text

from auditstream.cli.render import table

console = Console(highlight=False)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _yes(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "NO")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
def status_command(as_json: bool) -> None:
    """Processes and their health, consumer lag, events in / stored / dead-lettered in the
    last minute and hour, dead letters by reason, store size and retention, the last signed
    checkpoint of the local file.

    Exit code 0 when everything answers and every service is up, 1 otherwise.
    """
    from auditstream.cli.main import _settings
    from auditstream.ops.status import gather

    settings = _settings()
    status = gather(settings)
    if as_json:
        console.file.write(status.to_json() + "\n")
        sys.exit(0 if status.healthy else 1)
    sup = (
        f"supervised by `auditstream run` (pid {status.supervisor})"
        if status.supervisor
        else ("no `auditstream run` supervisor")
    )
    console.print(Text(f"Kafka {status.kafka}; store {status.store}; {sup}"))
    console.print(
        table(
            "processes",
            ["service", "pid", "up", "alive", "ready", "restarts", "detail", "metrics"],
            [
                [
                    p.role,
                    p.pid or "",
                    f"{p.uptime_seconds:.0f} s" if p.uptime_seconds else "",
                    _yes(p.alive) if p.running else "",
                    _yes(p.ready) if p.running else "",
                    "" if p.restarts is None else p.restarts,
                    p.detail,
                    p.metrics or "",
                ]
                for p in status.processes
            ],
            [False, True, True, False, False, True, False, False],
        )
    )
    for p in status.processes:
        if p.api:
            console.print(Text(f"API: {p.api} (served by the {p.role})"))
    if status.lag:
        console.print(
            table(
                "consumer lag (messages behind; a transactional topic shows 1 per partition "
                "at rest: its commit marker)",
                ["service", "group", "topic", "partitions", "lag", "max per partition"],
                [
                    [g.role, g.group, g.topic, g.partitions, g.lag, g.max_partition_lag]
                    for g in status.lag
                ],
                [False, False, False, True, True, True],
            )
        )
    if status.flow:
        rows = [
            [name, f.get("in", ""), f.get("stored", ""), f.get("dead_lettered", "")]
            for name, f in status.flow.items()
        ]
        console.print(
            table(
                "flow",
                ["last", "in (raw)", "stored", "dead-lettered"],
                rows,
                [False, True, True, True],
            )
        )
    if status.dead_letters_by_reason:
        console.print(
            table(
                "dead letters by reason",
                ["reason", "count"],
                list(status.dead_letters_by_reason.items()),
                [False, True],
            )
        )
    if status.tables:
        console.print(
            table(
                "store",
                ["table", "rows", "on disk", "retention"],
                [
                    [
                        t.table,
                        t.rows,
                        _size(t.bytes_on_disk),
                        f"{t.retention_days} days" if t.retention_days else "none",
                    ]
                    for t in status.tables
                ],
                [False, True, True, True],
            )
        )
    console.print(
        Text(
            f"last checkpoint: {status.last_checkpoint} "
            f"({status.checkpoints} in the local file; `auditstream verify` checks them)"
            if status.last_checkpoint
            else "last checkpoint: none yet (the sink signs one when chains move)"
        )
    )
    for error in status.errors:
        console.print(Text(error, style="red"))
    sys.exit(0 if status.healthy else 1)
