"""Review schedules (``review_schedules``), review periods, and when a review is overdue.

Periods are whole UTC calendar units: a week starts on Monday, a month on its 1st, a quarter
on 1 January, April, July or October. The review of a period is due once the period has
ended and overdue ``GRACE`` later if no sign-off for it is in the tenant's log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from auditstream.reviews.checklist import Check, checks_from_json, checks_to_json
from auditstream.sinks.tables import REVIEW_SCHEDULES_TABLE

Reader = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
"""Runs one parameterised statement (``{name:Type}`` placeholders) and returns its rows."""

GRACE = timedelta(days=3)


class Every(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


@dataclass(frozen=True)
class Schedule:
    tenant: str
    every: Every
    owner: str
    checks: tuple[Check, ...] = ()
    set_by: str = ""
    set_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> list[Any]:
        return [
            self.tenant,
            self.every.value,
            self.owner,
            checks_to_json(self.checks),
            self.set_by,
            self.set_at,
        ]


def period_start(every: Every, at: datetime) -> datetime:
    """The start of the period that holds ``at``."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if every is Every.WEEK:
        return day - timedelta(days=day.weekday())
    if every is Every.MONTH:
        return day.replace(day=1)
    return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)


def next_start(every: Every, start: datetime) -> datetime:
    if every is Every.WEEK:
        return start + timedelta(days=7)
    months = 1 if every is Every.MONTH else 3
    year, month = divmod(start.month - 1 + months, 12)
    return start.replace(year=start.year + year, month=month + 1)


def last_complete(every: Every, now: datetime) -> tuple[datetime, datetime]:
    """The latest period that has ended by ``now``: [start, end)."""
    end = period_start(every, now)
    start = period_start(every, end - timedelta(microseconds=1))
    return start, end


def ensure_table(client: Any, database: str) -> None:
    from auditstream.sinks import tables

    tables.ensure_reviews(client, database)


def save(client: Any, database: str, schedule: Schedule) -> None:
    """Write the schedule (a writer client: ``store.open_admin``)."""
    ensure_table(client, database)
    from auditstream.sinks.tables import REVIEW_SCHEDULE_COLUMNS

    client.insert(
        f"`{database}`.`{REVIEW_SCHEDULES_TABLE}`",
        [schedule.row()],
        column_names=[name for name, _ in REVIEW_SCHEDULE_COLUMNS],
    )


def _has_table(read: Reader, database: str) -> bool:
    rows = read(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": database, "t": REVIEW_SCHEDULES_TABLE},
    )
    return bool(rows and int(rows[0][0]))


def load(read: Reader, database: str, tenant: str | None = None) -> list[Schedule]:
    """The current schedule of ``tenant`` (or of every tenant)."""
    if not _has_table(read, database):
        return []
    where = "WHERE tenant_id = {tenant:String} " if tenant is not None else ""
    rows = read(
        "SELECT tenant_id, argMax(every, set_at), argMax(owner, set_at), "
        "argMax(checks, set_at), argMax(set_by, set_at), max(set_at) "
        f"FROM `{database}`.`{REVIEW_SCHEDULES_TABLE}` {where}"
        "GROUP BY tenant_id ORDER BY tenant_id",
        {"tenant": tenant} if tenant is not None else {},
    )
    out = []
    for t, every, owner, checks, set_by, set_at in rows:
        at = set_at if isinstance(set_at, datetime) else datetime.fromisoformat(str(set_at))
        out.append(
            Schedule(
                str(t),
                Every(str(every)),
                str(owner),
                checks_from_json(str(checks)),
                str(set_by),
                at.replace(tzinfo=at.tzinfo or UTC),
            )
        )
    return out


REVIEW_RESOURCE = "audit_review"
"""The resource type of a sign-off event (``signoff.py``)."""


@dataclass(frozen=True)
class SignOff:
    event_id: str
    by: str
    at: datetime
    period_from: str
    period_to: str
    note: str


def signoffs(read: Reader, database: str, tenant: str, limit: int = 20) -> list[SignOff]:
    """The tenant's recorded sign-offs, newest first (events in its own log)."""
    rows = read(
        "SELECT toString(event_id), actor_id, toUnixTimestamp64Milli(occurred_at), metadata "
        f"FROM `{database}`.`audit_events` WHERE tenant_id = {{tenant:String}} "
        "AND resource_type = {rt:String} AND action = 'status_change' AND outcome = 'success' "
        "ORDER BY occurred_at DESC LIMIT {n:UInt32}",
        {"tenant": tenant, "rt": REVIEW_RESOURCE, "n": limit},
    )
    out = []
    for event_id, actor, ms, metadata in rows:
        try:
            meta = orjson.loads(str(metadata or "{}"))
        except orjson.JSONDecodeError:
            meta = {}
        out.append(
            SignOff(
                str(event_id),
                str(actor),
                datetime.fromtimestamp(int(ms) / 1000, UTC),
                str(meta.get("period_from", "")),
                str(meta.get("period_to", "")),
                str(meta.get("note", "")),
            )
        )
    return out


@dataclass(frozen=True)
class Status:
    schedule: Schedule
    due_from: datetime
    due_to: datetime
    last: SignOff | None
    overdue: bool


def status(
    schedule: Schedule, done: Sequence[SignOff], now: datetime, grace: timedelta = GRACE
) -> Status:
    """Whether the review of the last complete period is signed off, and if not, overdue."""
    start, end = last_complete(schedule.every, now)
    covered = any(
        s.period_from
        and s.period_to
        and _parse(s.period_from) <= start <= end <= _parse(s.period_to)
        for s in done
    )  # a sign-off of a span that holds the whole period
    due = schedule.set_at < end  # a schedule set after the period ended owes it nothing
    return Status(
        schedule,
        start,
        end,
        done[0] if done else None,
        overdue=due and not covered and now >= end + grace,
    )


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
