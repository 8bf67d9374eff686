"""``auditstream reconcile``: account for every offset of the raw topic."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.markup import escape

from auditstream.cli.render import table
from auditstream.config import ConfigError, Settings
from auditstream.integrity.reconcile import PartitionReport, describe_runs
from auditstream.integrity.run import Selection, reconcile, summary
from auditstream.integrity.sources import SourceError
from auditstream.sinks.store import StoreUnavailable

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_GAPS, EXIT_ERROR, EXIT_UNSETTLED = 0, 1, 2, 3


def _millis(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _row(r: PartitionReport) -> list[object]:
    verdict = "OK" if r.ok and not r.in_flight else ("in flight" if r.ok else "GAPS")
    return [
        r.range.partition,
        f"{r.range.lo}-{r.range.hi - 1}" if r.range.hi > r.range.lo else "empty",
        r.messages,
        r.stored,
        r.dead_lettered,
        r.repeats,
        r.in_flight,
        len(r.missing),
        len(r.multiple),
        verdict,
    ]


def _as_json(r: PartitionReport) -> dict[str, object]:
    return {
        "partition": r.range.partition,
        "from_offset": r.range.lo,
        "to_offset": r.range.hi,
        "messages": r.messages,
        "stored": r.stored,
        "dead_lettered": r.dead_lettered,
        "repeats": r.repeats,
        "in_flight": r.in_flight,
        "missing": list(r.missing),
        "multiple": [{"offset": o, "places": list(p)} for o, p in r.multiple],
        "strays": list(r.strays),
        "retention_deleted": list(r.retention_deleted),
        "expired_unprocessed": list(r.expired) if r.expired else None,
        "dead_letter_reasons": r.dead_letter_reasons,
    }


@click.command("reconcile")
@click.option("--partition", "partitions", type=int, multiple=True, help="Only these (repeatable).")
@click.option("--from-offset", type=int, help="First raw offset (inclusive).")
@click.option("--to-offset", type=int, help="Last raw offset (exclusive).")
@click.option("--from", "from_time", help="Raw messages at or after this time (ISO 8601, UTC).")
@click.option("--to", "to_time", help="Raw messages before this time (ISO 8601, UTC).")
@click.option(
    "--wait", type=float, default=0.0, help="Wait up to this many seconds for offsets in flight."
)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
def reconcile_command(
    partitions: tuple[int, ...],
    from_offset: int | None,
    to_offset: int | None,
    from_time: str | None,
    to_time: str | None,
    wait: float,
    as_json: bool,
) -> None:
    """Prove that every raw offset ended in exactly one place.

    Per partition of the raw topic: stored, dead-lettered (with its reason) or recorded as a
    repeat, and names any offset that is in no place or in several. Exit codes: 0 every
    offset accounted for, 1 missing or multiple offsets, 2 error, 3 offsets still in flight.
    """
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        err.print("configuration error:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    selection = Selection(
        partitions=partitions or None,
        from_offset=from_offset,
        to_offset=to_offset,
        from_millis=_millis(from_time),
        to_millis=_millis(to_time),
    )
    try:
        with err.status("reconciling the raw topic against the store..."):
            reports = reconcile(settings, selection, wait_seconds=wait)
    except (SourceError, StoreUnavailable, ValueError) as exc:
        err.print("reconcile failed:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    totals = summary(reports)
    if as_json:
        console.file.write(
            json.dumps(
                {
                    "topic": settings.topics.raw,
                    "totals": totals,
                    "partitions": [_as_json(r) for r in reports],
                }
            )
            + "\n"
        )
    else:
        columns = [
            "partition",
            "offsets",
            "messages",
            "stored",
            "dead-lettered",
            "repeats",
            "in flight",
            "missing",
            "multiple",
            "verdict",
        ]
        rows = [_row(r) for r in reports]
        console.print(
            table(f"reconcile {settings.topics.raw}", columns, rows, [True] * 9 + [False])
        )
        for r in reports:
            if r.missing:
                console.print(
                    f"partition {r.range.partition}: missing offsets "
                    + escape(describe_runs(r.missing))
                )
            for offset, places in r.multiple[:20]:
                console.print(
                    f"partition {r.range.partition}: offset {offset} is in "
                    + ", ".join(p.value for p in places)
                )
            if r.retention_deleted:
                console.print(
                    f"partition {r.range.partition}: {len(r.retention_deleted)} offsets hold "
                    "events past the table's retention (stored, then deleted by its TTL): "
                    + escape(describe_runs(r.retention_deleted))
                )
            if r.expired:
                console.print(
                    f"partition {r.range.partition}: offsets {r.expired[0]}-{r.expired[1] - 1} "
                    "were deleted by the raw topic's retention before the normalizer read them"
                )
            if r.dead_letter_reasons:
                reasons = ", ".join(f"{k} {v}" for k, v in r.dead_letter_reasons.items())
                console.print(
                    f"partition {r.range.partition}: dead letters by reason: " + escape(reasons)
                )
        verdict = (
            "every offset accounted for"
            if not totals["missing"] and not totals["multiple"]
            else f"{totals['missing']} missing, {totals['multiple']} in several places"
        )
        if totals["expired_unprocessed"]:
            verdict += f"; {totals['expired_unprocessed']} expired from the raw topic unprocessed"
        if totals["in_flight"]:
            verdict += f"; {totals['in_flight']} still in flight (rerun, or use --wait)"
        console.print(f"{totals['messages']} messages: {verdict}")
    if totals["missing"] or totals["multiple"] or totals["expired_unprocessed"]:
        sys.exit(EXIT_GAPS)
    sys.exit(EXIT_UNSETTLED if totals["in_flight"] else EXIT_OK)
