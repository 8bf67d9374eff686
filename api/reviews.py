"""``/v1/reviews``: the tenant's audit-review schedule, its report for a period (JSON, CSV
or PDF) and the owner's sign-off (docs/reviews.md). The tenant is always the token's.

Reads run on the API's analyst sessions with parameterised SQL (``reviews/report.py``);
setting a schedule opens an admin session (the API runs in the process that owns the
store); a sign-off is an audit event sent to the raw topic (``reviews/signoff.py``).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from auditstream.api.app import Admin, ApiError, Context, Exporter, Reader
from auditstream.config import Settings
from auditstream.reviews import schedule as sched
from auditstream.reviews.report import Completeness, Report, build

log = logging.getLogger(__name__)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SignOffOut(_Out):
    event_id: str
    by: str
    at: datetime
    period_from: str
    period_to: str
    note: str


class ScheduleOut(_Out):
    tenant: str
    every: str
    owner: str
    checks: list[str] = Field(description="The tenant's own checklist sections")
    set_by: str
    set_at: datetime


class ReviewsOut(_Out):
    schedule: ScheduleOut | None
    due_from: datetime | None = Field(description="The last complete period's start")
    due_to: datetime | None
    overdue: bool
    signoffs: list[SignOffOut] = Field(description="Newest first")


class ScheduleIn(BaseModel):
    every: Literal["week", "month", "quarter"]
    owner: str = Field(min_length=1, max_length=256)
    checks: list[str] = Field(
        default_factory=list, description='"NAME=action:a|b;type:t;outcome:failure"'
    )


class SignOffIn(BaseModel):
    by: str = Field(min_length=1, max_length=256, description="The schedule's owner")
    note: str = Field(min_length=1, max_length=2000)
    period_from: datetime = Field(alias="from")
    period_to: datetime = Field(alias="to")


class SignedOut(_Out):
    event_id: str
    review_id: str


Start = Annotated[datetime | None, Query(alias="from", description="Default: last period")]
End = Annotated[datetime | None, Query(alias="to", description="Exclusive")]
Full = Annotated[bool, Query(description="Run reconcile and verify for the period")]


def _settings(request: Request) -> Settings:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    if settings is None:
        raise ApiError(503, "unavailable", "reviews need the API run by the sink or `serve`")
    return settings


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def router(ctx: Context) -> APIRouter:
    api = APIRouter(tags=["reviews"])

    @contextmanager
    def reading() -> Iterator[Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]]:
        try:
            with ctx.sessions() as client:

                def read(sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
                    return list(client.query(sql, parameters=params).result_rows)

                yield read
        except ApiError:
            raise
        except Exception as exc:
            log.warning("a review query failed: %s", exc)
            raise ApiError(503, "unavailable", "the store did not answer; try again") from None

    def _schedule(tenant: str) -> sched.Schedule | None:
        with reading() as read:
            found = sched.load(read, ctx.database, tenant)
        return found[0] if found else None

    @api.get("/v1/reviews", response_model=ReviewsOut)
    def reviews(who: Reader) -> ReviewsOut:
        """The tenant's review schedule, whether the last period's review is overdue, and
        the sign-offs on record."""
        with reading() as read:
            found = sched.load(read, ctx.database, who.tenant)
            done = sched.signoffs(read, ctx.database, who.tenant)
        sign = [SignOffOut(**s.__dict__) for s in done]
        if not found:
            return ReviewsOut(schedule=None, due_from=None, due_to=None, overdue=False,
                              signoffs=sign)  # fmt: skip
        s = found[0]
        st = sched.status(s, done, ctx.clock())
        from auditstream.reviews.checklist import Check

        def text(c: Check) -> str:
            parts = [("action", c.actions), ("type", c.resource_types), ("outcome", c.outcomes)]
            return c.name + "=" + ";".join(f"{k}:{'|'.join(v)}" for k, v in parts if v)

        return ReviewsOut(
            schedule=ScheduleOut(tenant=s.tenant, every=s.every.value, owner=s.owner,
                                 checks=[text(c) for c in s.checks], set_by=s.set_by,
                                 set_at=s.set_at),
            due_from=st.due_from, due_to=st.due_to, overdue=st.overdue, signoffs=sign,
        )  # fmt: skip

    @api.put("/v1/reviews/schedule", response_model=ScheduleOut)
    def set_schedule(who: Admin, body: ScheduleIn, request: Request) -> ScheduleOut:
        """Set the tenant's review schedule (replaces the previous one). Needs `admin`."""
        from auditstream.reviews.checklist import parse_check
        from auditstream.sinks import store

        settings = _settings(request)
        from auditstream.api.query import BadRequest

        try:
            checks = tuple(parse_check(c) for c in body.checks)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        s = sched.Schedule(who.tenant, sched.Every(body.every), body.owner, checks,
                           set_by=f"token:{who.token.id}", set_at=ctx.clock())  # fmt: skip
        try:
            client = store.open_admin(settings.clickhouse)
            try:
                sched.save(client, ctx.database, s)
            finally:
                client.close()
        except Exception as exc:
            log.warning("saving a review schedule failed: %s", exc)
            raise ApiError(503, "unavailable", "the store did not take the schedule") from None
        return ScheduleOut(tenant=s.tenant, every=s.every.value, owner=s.owner,
                           checks=body.checks, set_by=s.set_by, set_at=s.set_at)  # fmt: skip

    def _report(
        tenant: str, request: Request, start: datetime | None, end: datetime | None, full: bool
    ) -> Report:
        from auditstream.reviews import evidence

        settings = _settings(request)
        s = _schedule(tenant)
        if start is None or end is None:
            lo, hi = sched.last_complete(s.every if s else sched.Every.WEEK, ctx.clock())
            start, end = start or lo, end or hi
        start, end = _utc(start), _utc(end)
        if end <= start:
            from auditstream.api.query import BadRequest

            raise BadRequest("`to` must be after `from`")
        with reading() as read:
            done = (
                evidence.completeness(settings, lambda sql: read(sql, {}), tenant, start, end)
                if full
                else Completeness("not run (completeness=false)")
            )
            return build(read, ctx.database, tenant, start, end, done,
                         checks=s.checks if s else (),
                         key_fingerprint=evidence.key_fingerprint(settings),
                         now=ctx.clock())  # fmt: skip

    @api.get("/v1/reviews/report")
    def report(
        who: Reader,
        request: Request,
        start: Start = None,
        end: End = None,
        completeness: Full = True,
    ) -> dict[str, Any]:
        """The review report for a period as JSON: counts and trend, each checklist section
        with its findings and links to the events, completeness, sign-offs."""
        return _report(who.tenant, request, start, end, completeness).to_json()

    @api.get("/v1/reviews/report/{fmt}",
             responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}})  # fmt: skip
    def report_file(
        who: Exporter,
        request: Request,
        fmt: Literal["csv", "pdf"],
        start: Start = None,
        end: End = None,
        mapping: Literal["soc2-cc7.2", "iso27001-a8.15"] = "soc2-cc7.2",
        completeness: Full = True,
    ) -> Response:
        """The report as evidence for a control: CSV (one row per finding) or PDF (with a
        cover page), in the control's columns. Needs `audit_log:export`."""
        from auditstream.reviews import export
        from auditstream.reviews.controls import mapping as get_mapping

        r = _report(who.tenant, request, start, end, completeness)
        m = get_mapping(mapping)
        data = export.to_pdf(r, m) if fmt == "pdf" else export.to_csv(r, m).encode()
        name = f"review-{r.tenant}-{r.period_from:%Y%m%d}-{r.period_to:%Y%m%d}.{fmt}"
        return Response(
            data,
            media_type="application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "X-Content-SHA256": hashlib.sha256(data).hexdigest()},
        )  # fmt: skip

    @api.post("/v1/reviews/sign-off", response_model=SignedOut, status_code=201)
    def sign_off(who: Admin, body: SignOffIn, request: Request) -> SignedOut:
        """The owner marks the period's review done with a note: recorded as an audit event
        in the tenant's own log. Needs `admin`."""
        from auditstream.api.query import BadRequest
        from auditstream.reviews.signoff import ReviewError, review_id
        from auditstream.reviews.signoff import sign_off as record

        settings = _settings(request)
        s = _schedule(who.tenant)
        if s is None:
            raise BadRequest("this tenant has no review schedule")
        lo, hi = _utc(body.period_from), _utc(body.period_to)
        try:
            event_id = record(
                settings, s, body.by, body.note, lo, hi, channel="api", via=f"token:{who.token.id}"
            )
        except ReviewError as exc:
            raise BadRequest(str(exc)) from None
        return SignedOut(event_id=event_id, review_id=review_id(who.tenant, lo, hi))

    return api
