"""``auditstream reviews schedule | run | sign-off | list``: audit reviews (docs/reviews.md).

The store is read on an analyst session (read-only) and the schedule written on an admin
session. With the embedded store, that needs the sink stopped (only one process may open
it): while a sink runs, use the API's ``/v1/reviews`` endpoints or the viewer's Reviews page,
which run inside the sink.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from auditstream.cli.render import table
from auditstream.cli.verify import parse_time
from auditstream.config import Settings

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class _Refused(RuntimeError):
    pass


def _fail(message: str, code: int = 2) -> None:
    err.print("reviews:", escape(message))
    sys.exit(code)


def _no_owner(settings: Settings) -> None:
    from auditstream.sinks import query

    owner = query.live_owner(settings.clickhouse)
    if owner is not None:
        raise _Refused(
            f"the running sink (pid {owner['pid']}) owns the embedded store: use the API "
            "(/v1/reviews) or the viewer's Reviews page, or stop the sink first"
        )


@contextlib.contextmanager
def _reader(settings: Settings) -> Iterator[tuple[Any, Any]]:
    """(read(sql, params), run_sql(sql)) on one read-only analyst session."""
    from auditstream.sinks import query, store

    _no_owner(settings)
    client = store.open_analyst(settings.clickhouse, owner=False)
    try:

        def read(sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
            return list(client.query(sql, parameters=params).result_rows)

        def run_sql(sql: str) -> Sequence[Sequence[Any]]:
            return query.execute(client, sql, settings.clickhouse.database).rows

        yield read, run_sql
    finally:
        client.close()


def _errors() -> tuple[type[BaseException], ...]:
    from auditstream.reviews.signoff import ReviewError
    from auditstream.sinks.query import QueryError
    from auditstream.sinks.store import StoreUnavailable

    return (_Refused, ReviewError, QueryError, StoreUnavailable, ValueError, OSError)


def _user() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


@click.group()
def reviews() -> None:
    """Scheduled audit reviews: the report for a period, and its sign-off on record."""


@reviews.command("schedule")
@click.option("--tenant", required=True)
@click.option("--every", type=click.Choice(["week", "month", "quarter"]), required=True)
@click.option("--owner", required=True, help="The actor id who signs each review off.")
@click.option(
    "--check",
    "checks",
    multiple=True,
    help='A section of the tenant\'s own: "NAME=action:a|b;type:t;outcome:failure" (repeatable).',
)
def schedule_command(tenant: str, every: str, owner: str, checks: tuple[str, ...]) -> None:
    """Set the tenant's review schedule (replaces the previous one)."""
    from auditstream.cli.main import _settings
    from auditstream.reviews import schedule as sched
    from auditstream.reviews.checklist import parse_check
    from auditstream.sinks import store

    settings = _settings()
    try:
        parsed = tuple(parse_check(c) for c in checks)
        _no_owner(settings)
        s = sched.Schedule(tenant, sched.Every(every), owner, parsed, set_by=_user())
        client = store.open_admin(settings.clickhouse)
        try:
            sched.save(client, settings.clickhouse.database, s)
        finally:
            client.close()
    except _errors() as exc:
        _fail(str(exc))
    extra = f", {len(parsed)} own checks" if parsed else ""
    console.print(f"{escape(tenant)}: reviewed every {every} by {escape(owner)}{escape(extra)}")


def _period(every: Any, lo: datetime | None, hi: datetime | None) -> tuple[datetime, datetime]:
    from auditstream.reviews import schedule as sched

    if lo is not None and hi is not None:
        return lo, hi
    start, end = sched.last_complete(every or sched.Every.WEEK, datetime.now(UTC))
    return lo or start, hi or end


@reviews.command("run")
@click.option("--tenant", help="The tenant (required unless --due).")
@click.option("--from", "from_time", help="Start (ISO 8601, UTC); default: the last period.")
@click.option("--to", "to_time", help="End, exclusive (ISO 8601, UTC).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv", "pdf"]), default="table"
)
@click.option(
    "--mapping",
    type=click.Choice(["soc2-cc7.2", "iso27001-a8.15"]),
    default="soc2-cc7.2",
    show_default=True,
    help="The control whose columns CSV and PDF use.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option(
    "--due",
    is_flag=True,
    help="On schedule (e.g. from cron): every schedule's last complete period not yet signed "
    "off, as PDF, CSV and JSON in --out-dir.",
)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--no-completeness", is_flag=True, help="Skip reconcile and verify (the report says so)."
)
def run_command(
    tenant: str | None,
    from_time: str | None,
    to_time: str | None,
    fmt: str,
    mapping: str,
    out: Path | None,
    due: bool,
    out_dir: Path | None,
    no_completeness: bool,
) -> None:
    """The review report for a period: counts, each checklist section, completeness."""
    from auditstream.cli.main import _settings
    from auditstream.reviews import evidence, export
    from auditstream.reviews import schedule as sched
    from auditstream.reviews.controls import mapping as get_mapping
    from auditstream.reviews.report import Completeness, build

    settings = _settings()
    db = settings.clickhouse.database
    if due and out_dir is None:
        _fail("--due needs --out-dir DIR")
    if not due and tenant is None:
        _fail("name the tenant (--tenant), or use --due")
    if fmt == "pdf" and out is None and not due:
        _fail("a PDF needs --out FILE")
    m = get_mapping(mapping)
    now = datetime.now(UTC)

    def one(read: Any, run_sql: Any, t: str, s: Any, lo: datetime, hi: datetime) -> Any:
        with err.status(f"{escape(t)}: checking completeness (reconcile, verify)..."):
            done = (
                Completeness("not run (--no-completeness)")
                if no_completeness
                else evidence.completeness(settings, run_sql, t, lo, hi)
            )
        return build(
            read, db, t, lo, hi, done,
            checks=s.checks if s else (), key_fingerprint=evidence.key_fingerprint(settings),
        )  # fmt: skip

    try:
        with _reader(settings) as (read, run_sql):
            if due:
                assert out_dir is not None
                out_dir.mkdir(parents=True, exist_ok=True)
                for sch in sched.load(read, db, tenant):
                    st = sched.status(sch, sched.signoffs(read, db, sch.tenant), now, timedelta(0))
                    if not st.overdue:  # with no grace: owed and not signed off
                        continue
                    r = one(read, run_sql, sch.tenant, sch, st.due_from, st.due_to)
                    stem = f"review-{sch.tenant}-{st.due_from:%Y%m%d}-{st.due_to:%Y%m%d}"
                    (out_dir / f"{stem}.json").write_bytes(export.to_json(r))
                    (out_dir / f"{stem}.csv").write_text(export.to_csv(r, m))
                    (out_dir / f"{stem}.pdf").write_bytes(export.to_pdf(r, m))
                    console.print(
                        f"{escape(sch.tenant)}: {escape(str(out_dir / stem))}.pdf|csv|json, "
                        f"{len(r.findings())} findings"
                    )
                return
            assert tenant is not None
            found = sched.load(read, db, tenant)
            s = found[0] if found else None
            lo, hi = _period(s.every if s else None, parse_time(from_time), parse_time(to_time))
            report = one(read, run_sql, tenant, s, lo, hi)
    except _errors() as exc:
        _fail(str(exc))
    if fmt == "table":
        _print(report)
        return
    data: bytes = (
        export.to_json(report)
        if fmt == "json"
        else export.to_csv(report, m).encode()
        if fmt == "csv"
        else export.to_pdf(report, m)
    )
    if out is None:
        sys.stdout.buffer.write(data + (b"\n" if fmt == "json" else b""))
        return
    out.write_bytes(data)
    console.print(
        f"{escape(str(out))}: {len(report.findings())} findings, sha256 "
        f"{hashlib.sha256(data).hexdigest()}"
    )


def _print(report: Any) -> None:
    c = report.completeness
    console.print(
        f"review of {escape(report.tenant)} {report.period_from:%Y-%m-%d %H:%M} to "
        f"{report.period_to:%Y-%m-%d %H:%M} UTC: {report.total} events "
        f"(previous period {report.previous_total})"
    )
    console.print(f"verification: {escape(c.verification)}; reconciliation: "
                  f"{escape(c.reconciliation)}")  # fmt: skip
    for d in (*c.verification_detail, *c.reconciliation_detail):
        console.print("  " + escape(d))
    for s in report.sections:
        if not s.findings:
            console.print(f"{escape(s.title)}: no findings")
            continue
        rows = [
            [f.occurred_at, f.actor_id, f.action, f.resource, f.outcome, f.detail,
             " ".join(f.event_ids)]
            for f in s.findings
        ]  # fmt: skip
        console.print(
            table(
                s.title,
                ["at (UTC)", "actor", "action", "resource", "outcome", "finding", "events"],
                rows,
            )
        )
    for sig in report.signoffs:
        console.print(f"signed off by {escape(sig['by'])} at {sig['at']}: {escape(sig['note'])}")


@reviews.command("sign-off")
@click.option("--tenant", required=True)
@click.option("--by", "by", required=True, help="The owner's actor id.")
@click.option("--note", required=True)
@click.option("--from", "from_time", help="The period's start; default: the last period.")
@click.option("--to", "to_time")
@click.option(
    "--report",
    "report_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The report reviewed (its sha256 goes on record).",
)
def sign_off_command(
    tenant: str,
    by: str,
    note: str,
    from_time: str | None,
    to_time: str | None,
    report_file: Path | None,
) -> None:
    """Mark the review done: an audit event in the tenant's own log."""
    from auditstream.cli.main import _settings
    from auditstream.reviews import schedule as sched
    from auditstream.reviews.signoff import ReviewError, sign_off

    settings = _settings()
    try:
        with _reader(settings) as (read, _):
            found = sched.load(read, settings.clickhouse.database, tenant)
        if not found:
            raise ReviewError(f"{tenant} has no review schedule: `auditstream reviews schedule`")
        lo, hi = _period(found[0].every, parse_time(from_time), parse_time(to_time))
        digest = hashlib.sha256(report_file.read_bytes()).hexdigest() if report_file else ""
        event_id = sign_off(settings, found[0], by, note, lo, hi, report_sha256=digest, via=_user())
    except _errors() as exc:
        _fail(str(exc))
    console.print(
        f"{escape(tenant)}: review {lo:%Y-%m-%d}..{hi:%Y-%m-%d} signed off by {escape(by)} "
        f"(audit event {event_id})"
    )


@reviews.command("list")
@click.option("--tenant")
@click.option("--no-alert", is_flag=True, help="Do not raise review_overdue alerts.")
@click.option(
    "--grace-days",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Days after a period ends before its review is overdue.",
)
def list_command(tenant: str | None, no_alert: bool, grace_days: float) -> None:
    """Each schedule, its last sign-off and whether the last period's review is overdue
    (an overdue review raises a low-severity review_overdue alert)."""
    from auditstream.cli.main import _settings
    from auditstream.integrity.audit import publish_alerts
    from auditstream.reviews import schedule as sched
    from auditstream.reviews.signoff import overdue_alert

    settings = _settings()
    now = datetime.now(UTC)
    db = settings.clickhouse.database
    try:
        with _reader(settings) as (read, _):
            grace = timedelta(days=grace_days)
            states = [sched.status(s, sched.signoffs(read, db, s.tenant), now, grace)
                      for s in sched.load(read, db, tenant)]  # fmt: skip
    except _errors() as exc:
        _fail(str(exc))
    rows = [
        [
            st.schedule.tenant, st.schedule.every.value, st.schedule.owner,
            len(st.schedule.checks),
            f"{st.due_from:%Y-%m-%d}..{st.due_to:%Y-%m-%d}",
            f"{st.last.by} {st.last.at:%Y-%m-%d %H:%M}" if st.last else "never",
            "OVERDUE" if st.overdue else "ok",
        ]
        for st in states
    ]  # fmt: skip
    console.print(
        table(
            "review schedules",
            ["tenant", "every", "owner", "own checks", "last period", "last sign-off", "state"],
            rows,
            [False, False, False, True],
        )
    )
    late = [overdue_alert(st, now) for st in states if st.overdue]
    if late and not no_alert:
        try:
            left = publish_alerts(settings, late)
        except Exception as exc:
            left = len(late)
            err.print("review_overdue alert not sent:", escape(str(exc)))
        if left:
            err.print(f"{left} review_overdue alert(s) not acknowledged by Kafka")
    if late:
        sys.exit(1)
