"""``auditstream retention show | set DAYS``: the store's TTL, changed only on purpose.

Changing retention deletes data, so nothing changes it as a side effect (not the sink's
start-up, never a reader). ``set`` says what the new horizon will delete (rows older than
it, per tenant) before it asks, and records the change as an audit event on the raw topic
(tenant ``_system``, the OS user as a ``system`` actor, ``update`` of a
``retention_policy``, field ``retention_days`` old -> new). The record is sent and
acknowledged by Kafka **before** the TTL changes: if Kafka can't take it, nothing changes.
A change that then fails is recorded again with outcome ``failure``.

Who runs the DDL: with the embedded store and a running sink, the sink (it owns the store;
its admin endpoint, token in ``sink-admin.json``); with no sink, this process opens the
store; with a ClickHouse server, this process with the DSN's user (which needs ALTER).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from auditstream.config import Settings
from auditstream.producers.acknowledged import SYSTEM_TENANT
from auditstream.sinks import query, store, tables
from auditstream.sinks.query import literal
from auditstream.sinks.tables import TableSpec

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class RetentionError(RuntimeError):
    """Retention was not changed; the message says why."""


@dataclass(frozen=True)
class Preview:
    table: str
    old_days: int | None
    new_days: int
    past_horizon: list[tuple[str, int]]
    """(tenant, rows older than the new horizon), for a shorter retention."""

    @property
    def total(self) -> int:
        return sum(n for _, n in self.past_horizon)


def stored_days(settings: Settings, spec: TableSpec) -> int | None:
    ch = settings.clickhouse
    rows = query.run(
        ch,
        "SELECT engine_full FROM system.tables WHERE database = "
        f"{literal(ch.database)} AND name = {literal(spec.name)}",
    ).rows
    if not rows:
        raise RetentionError(
            f"the store has no `{ch.database}`.`{spec.name}` table: start the sink once first"
        )
    return tables.parse_retention_days(str(rows[0][0]))


def preview(settings: Settings, spec: TableSpec, days: int) -> Preview:
    try:
        tables.check_retention_days(days)
    except ValueError as exc:
        raise RetentionError(str(exc)) from None
    old = stored_days(settings, spec)
    # Always the new TTL's own expression, longer or shorter than the old one: what the
    # preview counts is what the next merges delete.
    result = query.run(
        settings.clickhouse,
        f"SELECT {spec.tenant_column}, count() FROM `{settings.clickhouse.database}`."
        f"`{spec.name}` WHERE toDateTime({spec.time_column}) + INTERVAL {days} DAY < now() "
        f"GROUP BY {spec.tenant_column} ORDER BY {spec.tenant_column}",
    )
    past = [(str(t), int(n)) for t, n in result.rows]
    return Preview(spec.name, old, days, past)


def _actor() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"id": f"os:{user}@{socket.gethostname()}", "type": "system", "display_name": user}


def record(
    settings: Settings,
    plan: Preview,
    outcome: str = "success",
    timeout: float = 15.0,
    detail: str = "",
) -> str:
    """Send the audit record and wait for Kafka's acknowledgement; raise if it is not given."""
    from auditstream.producers.acknowledged import NotAcknowledged, send_acknowledged

    metadata: dict[str, Any] = {
        "rows_past_new_horizon": plan.total,
        "database": settings.clickhouse.database,
        "command": "auditstream retention set",
    }
    if detail:
        metadata["error"] = detail[:500]
    try:
        event_id = send_acknowledged(
            settings,
            "auditstream-retention",
            timeout,
            tenant_id=SYSTEM_TENANT,
            actor=_actor(),
            action="update",
            resource={"type": "retention_policy", "id": plan.table, "name": f"{plan.table} TTL"},
            changes=[{"field": "retention_days", "old": plan.old_days, "new": plan.new_days}],
            outcome=outcome,
            channel="cli",
            metadata=metadata,
        )
    except NotAcknowledged as exc:
        raise RetentionError(
            f"{exc}: retention NOT changed (the change must be recorded first). "
            "Check the broker and try again."
        ) from exc
    return event_id


def apply(settings: Settings, spec: TableSpec, days: int, timeout: float = 120.0) -> None:
    """Change the TTL, through the store's owner when a sink owns the embedded store."""
    ch = settings.clickhouse
    owner = query.live_owner(ch)
    if owner is None:
        client = store.open_admin(ch)
        try:
            tables.set_retention(client, ch.database, spec, days)
        finally:
            client.close()
        return
    admin = query.admin_file(ch)
    try:
        doc = json.loads(admin.read_text()) if admin is not None else None
    except (OSError, ValueError):
        doc = None
    if not doc or doc.get("pid") != owner["pid"]:
        raise RetentionError(
            f"the running sink (pid {owner['pid']}) owns the store but offers no admin "
            "endpoint: stop it, run this again, then start it"
        )
    request = urllib.request.Request(
        f"http://127.0.0.1:{doc['port']}/admin/retention",
        data=json.dumps({"table": spec.name, "days": days}).encode(),
        headers={"Authorization": f"Bearer {doc['token']}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError):
            detail = json.loads(detail)["error"]
        raise RetentionError(f"the sink refused the change: {detail}") from None
    except urllib.error.URLError as exc:
        raise RetentionError(f"the sink did not answer: {exc.reason}") from None


def _preview_table(plan: Preview) -> Table:
    t = Table(title=None, header_style="bold")
    t.add_column("tenant")
    t.add_column("rows to delete", justify="right")
    for tenant, n in plan.past_horizon:
        t.add_row(escape(tenant), f"{n:,}")
    return t


@click.group()
def retention() -> None:
    """How long events and alerts are kept (the tables' TTL)."""


@retention.command("show")
def retention_show() -> None:
    """The stored retention of each table, and the configured one."""
    from auditstream.cli.main import _settings

    settings = _settings()
    configured = {
        tables.EVENTS_TABLE: settings.clickhouse.retention_days,
        tables.ALERTS_TABLE: settings.clickhouse.alert_retention_days,
    }
    try:
        for spec in (tables.EVENTS, tables.ALERTS):
            days = stored_days(settings, spec)
            note = (
                "" if days == configured[spec.name] else f" (configured: {configured[spec.name]})"
            )
            console.print(f"{spec.name}: {days if days is not None else 'no TTL'} days{note}")
    except (RetentionError, query.QueryError, store.StoreUnavailable) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)


@retention.command("set")
@click.argument("days", type=click.IntRange(min=1))
@click.option(
    "--table",
    "table_name",
    type=click.Choice(["events", "alerts"]),
    default="events",
    show_default=True,
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--kafka-timeout", default=15.0, show_default=True, help="Seconds to wait for Kafka.")
def retention_set(days: int, table_name: str, yes: bool, kafka_timeout: float) -> None:
    """Change the retention to DAYS: says what it deletes, asks, records it, applies it."""
    from auditstream.cli.main import _settings

    settings = _settings()
    spec = tables.spec_named(table_name)
    try:
        plan = preview(settings, spec, days)
    except (RetentionError, query.QueryError, store.StoreUnavailable) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    if plan.old_days == days:
        console.print(f"{spec.name} already keeps {days} days: nothing to change")
        return
    old = "no TTL" if plan.old_days is None else f"{plan.old_days} days"
    console.print(f"{spec.name}: retention {old} -> {days} days")
    if plan.past_horizon:
        console.print(
            f"This deletes {plan.total:,} rows older than {days} days "
            "(at the next merges, whole monthly parts at a time):"
        )
        console.print(_preview_table(plan))
    else:
        console.print("No stored row is older than the new horizon: nothing is deleted now.")
    if not yes and not click.confirm("Change the retention?", default=False):
        console.print("Not changed.")
        sys.exit(1)
    try:
        event_id = record(settings, plan, timeout=kafka_timeout)
    except RetentionError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    try:
        apply(settings, spec, days)
    except (RetentionError, store.StoreUnavailable, ValueError) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        try:
            record(settings, plan, outcome="failure", timeout=kafka_timeout, detail=str(exc))
        except RetentionError as again:
            err.print("[red]and the failure was not recorded:[/red]", escape(str(again)))
        sys.exit(1)
    try:
        signed(settings, spec, days)
    except Exception as exc:  # the change is made and recorded as an event; say so loudly
        err.print(
            "[red]the retention checkpoint was not written:[/red]",
            escape(str(exc)),
            "(`auditstream verify` will report the rows the new TTL deletes as deleted)",
        )
        sys.exit(1)
    console.print(f"{spec.name}: retention is now {days} days (audit event {event_id})")


def signed(settings: Settings, spec: TableSpec, days: int) -> None:
    """A signed retention checkpoint (docs/decisions/0005): ``verify`` then counts what the
    new TTL deletes as expired, not as deleted. Events table only (the one with chains)."""
    from auditstream.sinks.service import recorder

    if spec.name == tables.EVENTS_TABLE:
        recorder(settings).retention(spec.name, days, "admin")
