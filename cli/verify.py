"""``auditstream verify``: the stored chains against the signed checkpoints."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from auditstream.config import ConfigError, Settings

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_TAMPERED, EXIT_ERROR = 0, 1, 2


def parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time or date") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@click.command("verify")
@click.option("--tenant", help="Only this tenant.")
@click.option("--from", "from_time", help="Events on or after this UTC day (ISO 8601).")
@click.option("--to", "to_time", help="Events before this time (ISO 8601; whole days).")
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trust only these public keys (PEM; default: this home's keys).",
)
@click.option(
    "--checkpoints",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoints from this file (a WORM copy; default: this home's).",
)
@click.option(
    "--from-topic",
    is_flag=True,
    help="Checkpoints from the checkpoint topic instead of the local file.",
)
@click.option("--no-alert", is_flag=True, help="Do not raise a log_tampering alert.")
def verify_command(
    tenant: str | None,
    from_time: str | None,
    to_time: str | None,
    public_key: Path | None,
    checkpoints: Path | None,
    from_topic: bool,
    no_alert: bool,
) -> None:
    """Recompute the hash chains and check them against the signed checkpoints.

    Prints OK, or each record that was modified, deleted, inserted or reordered. Rows the
    signed retention allows to be gone are counted as expired. Exit codes: 0 OK,
    1 tampering found (a log_tampering alert is sent to the alert topic), 2 error.
    """
    from auditstream.integrity import audit
    from auditstream.integrity.keys import KeyFileError
    from auditstream.sinks import query
    from auditstream.sinks.store import StoreUnavailable

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        err.print("configuration error:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    lo, hi = parse_time(from_time), parse_time(to_time)
    now = datetime.now(UTC)
    try:
        docs, keys = audit.load_material(
            settings,
            public_key.read_text() if public_key is not None else None,
            checkpoints,
            from_topic,
        )
        if not keys:
            raise KeyFileError("no public key: start the sink once, or pass --public-key")

        def run(sql: str) -> list[list[object]]:
            return query.run(settings.clickhouse, sql).rows

        with err.status("verifying...") as status:
            reports = audit.verify_store(
                run,
                settings.clickhouse.database,
                docs,
                keys,
                tenant=tenant,
                lo=lo,
                hi=hi,
                progress=lambda line: status.update(f"verifying {escape(line)}"),
                now=now,
                checkpoint_seconds=settings.integrity.checkpoint_seconds,
            )
    except (
        query.QueryError,
        StoreUnavailable,
        KeyFileError,
        OSError,
        ValueError,
        RuntimeError,
    ) as exc:
        err.print("verify failed:", escape(str(exc)))
        sys.exit(EXIT_ERROR)
    bad = {t: r for t, r in reports.items() if not r.ok}
    for t, r in reports.items():
        verdict = "OK" if r.ok else f"TAMPERED ({len(r.all_findings())} findings)"
        extra = f", {r.total('expired')} expired" if r.total("expired") else ""
        extra += f", {r.total('pending')} not yet checkpointed" if r.total("pending") else ""
        console.print(
            f"{escape(t)}: {len(r.chains)} chains, {r.total('records')} records, "
            f"{r.total('verified')} verified{extra}: {verdict}"
        )
        for f in r.all_findings():
            console.print("  " + escape(f.line()))
    if not reports:
        console.print("no events and no checkpoints: nothing to verify")
    if bad and not no_alert:
        start, end = audit.day_bounds(lo, hi, now)
        alerts = [audit.tampering_alert(t, r, start, end, now) for t, r in bad.items()]
        try:
            left = audit.publish_alerts(settings, alerts)
        except Exception as exc:
            left = len(alerts)
            err.print("log_tampering alert not sent:", escape(str(exc)))
        if left:
            err.print(f"{left} log_tampering alert(s) not acknowledged by Kafka")
    console.print("OK" if not bad else f"TAMPERING FOUND for {len(bad)} tenant(s)")
    sys.exit(EXIT_TAMPERED if bad else EXIT_OK)
