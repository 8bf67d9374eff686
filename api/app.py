"""The FastAPI application: routes, token checks, errors.

Every route takes the tenant from its token (``Caller``), never from the request, and
passes it to the query layer (``query.py``), which puts it first in every ``WHERE``.
Errors are JSON, ``{"error": {"code", "message", "missing_permission"?}}``: 401 for a
missing, unknown, revoked or expired token, 403 naming the scope a token lacks, 400 for a
bad filter, 404 for what this tenant does not have (another tenant's event is "not found",
exactly like an id that does not exist).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from auditstream.api import models
from auditstream.api import query as q
from auditstream.api.exports import MEDIA_TYPES, Format, stream_text, write
from auditstream.api.jobs import Job, Jobs
from auditstream.api.tokens import Scope, TokenError, TokenRecord, TokenStore
from auditstream.config import ApiSettings
from auditstream.sinks.query import QueryError
from auditstream.sinks.store import StoreUnavailable
from auditstream.sinks.tables import parse_retention_days

log = logging.getLogger(__name__)

SessionSource = Callable[[], contextlib.AbstractContextManager[Any]]
"""Hands out an analyst session for one query (``query_server.SessionPool.session``)."""


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, missing_permission: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.missing_permission = missing_permission


@dataclass
class Context:
    """What the routes share: settings, analyst sessions, tokens, export jobs."""

    api: ApiSettings
    database: str
    sessions: SessionSource
    tokens: TokenStore
    jobs: Jobs
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    chunk: int = q.EXPORT_CHUNK
    """Rows per keyset step of an export."""

    def run(self, query: q.Query) -> Any:
        try:
            with self.sessions() as client:
                return client.query(query.sql, parameters=query.parameters)
        except (QueryError, StoreUnavailable) as exc:
            # The reason names hosts, paths or SQL: the operator's log has it, callers do not.
            log.warning("a query failed: %s", exc)
            raise ApiError(
                503,
                "unavailable",
                "the store did not answer; try again shortly or narrow the date range",
            ) from None

    def events(self, query: q.Query) -> list[q.EventRow]:
        return list(q.rows_of(self.run(query)))

    def scalar_row(self, query: q.Query) -> tuple[Any, ...]:
        return tuple(self.run(query).result_rows[0])

    def iter_rows(self, tenant: str, f: q.Filters, sort: q.Sort) -> Iterator[q.EventRow]:
        """Every matching row, in keyset steps of ``chunk`` rows (bounded memory)."""
        cursor: q.Cursor | None = None
        while True:
            rows = self.events(q.page(self.database, tenant, f, sort, self.chunk, cursor))
            yield from q.unique(rows[: self.chunk])
            if len(rows) <= self.chunk:  # page() reads one row more than asked
                return
            cursor = rows[self.chunk - 1].cursor(sort, f)


@dataclass(frozen=True)
class Caller:
    token: TokenRecord

    @property
    def tenant(self) -> str:
        return self.token.tenant


def _error(status: int, code: str, message: str, missing: str | None = None) -> JSONResponse:
    body = models.ErrorResponse(
        error=models.ErrorBody(code=code, message=message, missing_permission=missing)  # type: ignore[arg-type]
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


_FROM = "ISO 8601 (UTC if no offset); default: 30 days before `to`"
_TO = "ISO 8601, exclusive; default: now"
_MANY = "One or more (repeat the parameter or separate with commas)"
_ACTOR_TYPE = "member, system, api, workflow, agent, service"
_ACTION = (
    "Actions or groups (`update` also finds status_change, comment and assign; `session`, "
    "`access_control`, `integration`); synonyms such as `edited` accepted"
)
_OUTCOME = "success, failure, denied"
_VIEWER_SCOPE = "audit_log:read (default) and / or audit_log:export"
_SEARCH = "Text in the entity's name or id, or the actor's name (case-insensitive)"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": models.ErrorResponse, "description": "A filter, cursor or range refused"},
    401: {
        "model": models.ErrorResponse,
        "description": "Missing, unknown, revoked or expired token",
    },
    403: {"model": models.ErrorResponse, "description": "The token lacks a permission (named)"},
}


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def caller(request: Request) -> Caller:
    """The calling token (401 unless it is known, active and unexpired)."""
    ctx = _ctx(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing token: send Authorization: Bearer <token>")
    record = ctx.tokens.verify(token, ctx.clock())
    if record is None:
        raise ApiError(401, "unauthorized", "unknown, revoked or expired token")
    return Caller(record)


def needs(scope: Scope) -> Callable[..., Caller]:
    def check(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if scope.value not in who.token.scopes:
            raise ApiError(
                403, "forbidden",
                f"this token lacks the {scope.value} permission",
                missing_permission=scope.value,
            )  # fmt: skip
        return who

    return check


Reader = Annotated[Caller, Depends(needs(Scope.READ))]
Exporter = Annotated[Caller, Depends(needs(Scope.EXPORT))]
Admin = Annotated[Caller, Depends(needs(Scope.ADMIN))]


def _filters(
    ctx: Context,
    default_days: int,
    start: datetime | None,
    end: datetime | None,
    actor_id: list[str] | None,
    actor_type: list[str] | None,
    action: list[str] | None,
    exact_action: bool,
    entity_type: list[str] | None,
    entity_id: str | None,
    outcome: list[str] | None,
    ip: str | None,
    session_id: str | None,
    search: str | None,
) -> q.Filters:
    return q.build_filters(
        now=ctx.clock(), default_days=default_days, max_days=ctx.api.max_range_days,
        start=start, end=end, actor_id=actor_id, actor_type=actor_type, action=action,
        exact_action=exact_action, entity_type=entity_type, entity_id=entity_id,
        outcome=outcome, ip=ip, session_id=session_id, q=search,
    )  # fmt: skip


def filters(
    request: Request,
    start: Annotated[datetime | None, Query(alias="from", description=_FROM)] = None,
    end: Annotated[datetime | None, Query(alias="to", description=_TO)] = None,
    actor_id: Annotated[list[str] | None, Query(description=_MANY)] = None,
    actor_type: Annotated[list[str] | None, Query(description=_ACTOR_TYPE)] = None,
    action: Annotated[list[str] | None, Query(description=_ACTION)] = None,
    exact_action: Annotated[bool, Query(description="Do not expand groups")] = False,
    entity_type: Annotated[list[str] | None, Query()] = None,
    entity_id: Annotated[str | None, Query()] = None,
    outcome: Annotated[list[str] | None, Query(description=_OUTCOME)] = None,
    ip: Annotated[str | None, Query()] = None,
    session_id: Annotated[str | None, Query()] = None,
    search: Annotated[str | None, Query(alias="q", description=_SEARCH)] = None,
) -> q.Filters:
    ctx = _ctx(request)
    return _filters(
        ctx,
        ctx.api.default_range_days, start, end, actor_id, actor_type, action,
        exact_action, entity_type, entity_id, outcome, ip, session_id, search,
    )  # fmt: skip


F = Annotated[q.Filters, Depends(filters)]


Limit = Annotated[int, Query(ge=1, le=1000)]


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="auditstream audit-log API",
        version="1",
        description=(
            "Read a tenant's audit log: events with filters and search, one event's details "
            "and cascade, an entity's timeline, analytics and exports. Every request carries "
            "`Authorization: Bearer <token>` (`auditstream tokens create`); the token's "
            "tenant scopes everything it can see."
        ),
        responses=ERRORS,
    )
    app.state.ctx = ctx
    if ctx.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.api.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
            expose_headers=["Content-Disposition", "X-Content-SHA256"],
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.missing_permission)

    @app.exception_handler(q.BadRequest)
    async def _bad(request: Request, exc: q.BadRequest) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path"))
            parts.append(f"{where}: {e.get('msg')}")
        return _error(400, "bad_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API request failed: %s %s", request.method, request.url.path)
        return _error(500, "unavailable", "the request failed; the server log says why")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 401: "unauthorized", 403: "forbidden"}.get(exc.status_code)
        return _error(exc.status_code, code or "bad_request", str(exc.detail))

    # -- who am I ------------------------------------------------------------------------
    @app.get("/v1/me", response_model=models.TokenInfo, tags=["tokens"])
    def me(who: Annotated[Caller, Depends(caller)]) -> models.TokenInfo:
        """The calling token: its tenant, role, scopes and expiry."""
        t = who.token
        return models.TokenInfo(id=t.id, tenant=t.tenant, role=t.role, scopes=list(t.scopes),
                                expires_at=t.expires_at)  # fmt: skip

    @app.get("/v1/tokens", response_model=list[models.TokenInfo], tags=["tokens"])
    def tokens(who: Admin) -> list[models.TokenInfo]:
        """The tenant's tokens (never their secrets). Needs `admin`."""
        return [
            models.TokenInfo(
                id=t.id,
                tenant=t.tenant,
                role=t.role,
                scopes=list(t.scopes),
                expires_at=t.expires_at,
            )
            for t in ctx.tokens.entries(who.tenant)
            if t.active(ctx.clock())
        ]

    @app.post("/v1/viewer-tokens", response_model=models.ViewerToken, status_code=201,
              tags=["tokens"])  # fmt: skip
    def viewer_token(
        who: Admin,
        scope: Annotated[list[Scope] | None, Query(description=_VIEWER_SCOPE)] = None,
        ttl_minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 15,
    ) -> models.ViewerToken:
        """A short-lived token for a viewer embedded in your product: this tenant only, read
        (and export, if asked and this token holds it), not stored, refused once it expires
        or once this token is revoked. Needs `admin`."""
        wanted = tuple(scope or (Scope.READ,))
        try:
            token, expires = ctx.tokens.mint_viewer(
                who.token, wanted, timedelta(minutes=ttl_minutes), ctx.clock()
            )
        except TokenError as exc:
            raise q.BadRequest(str(exc)) from None
        scopes = sorted(s.value for s in wanted)
        return models.ViewerToken(token=token, tenant=who.tenant, scopes=scopes, expires_at=expires)

    @app.get("/v1/retention", response_model=models.Retention, tags=["events"])
    def retention(who: Reader) -> models.Retention:
        """How long this tenant's events are kept."""
        rows = ctx.run(q.retention(ctx.database)).result_rows
        days = parse_retention_days(str(rows[0][0])) if rows else None
        oldest = None if days is None else ctx.clock() - timedelta(days=days)
        return models.Retention(days=days, oldest_kept=oldest)

    # -- events --------------------------------------------------------------------------
    @app.get("/v1/events", response_model=models.EventPage, tags=["events"])
    def list_events(
        who: Reader,
        f: F,
        sort: q.Sort = q.Sort.NEWEST,
        limit: Annotated[int, Query(ge=1, le=q.MAX_PAGE)] = q.DEFAULT_PAGE,
        cursor: Annotated[
            str | None, Query(description="`next_cursor` of the previous page")
        ] = None,
    ) -> models.EventPage:
        """Events of the token's tenant, newest (or oldest) first, a page at a time."""
        at = q.Cursor.decode(cursor) if cursor else None
        f = q.apply_cursor(f, at, sort, ctx.api.max_range_days)
        rows = ctx.events(q.page(ctx.database, who.tenant, f, sort, limit, at))
        more = len(rows) > limit
        rows = rows[:limit]
        return models.EventPage(
            data=[models.EventSummary.of(r) for r in q.unique(rows)],
            next_cursor=rows[-1].cursor(sort, f).encode() if more else None,
            range_from=f.start,
            range_to=f.end,
        )

    @app.get("/v1/events/{event_id}", response_model=models.EventDetail, tags=["events"],
             responses={404: {"model": models.ErrorResponse}})  # fmt: skip
    def get_event(who: Reader, event_id: str) -> models.EventDetail:
        """One event as four cards (action, actor, entity, details with old -> new per
        field), the event that caused it, the events it caused, and its cascade."""
        try:
            wanted = str(uuid.UUID(event_id))
        except ValueError:
            raise ApiError(404, "not_found", "no such event") from None
        found = ctx.events(q.by_id(ctx.database, who.tenant, wanted))
        if not found:
            raise ApiError(404, "not_found", "no such event")
        row = found[0]
        parent_id = str(row.values["parent_event_id"])
        parent = ctx.events(q.by_id(ctx.database, who.tenant, parent_id)) if parent_id else []
        kids = q.unique(ctx.events(q.children(ctx.database, who.tenant, wanted)))
        corr = str(row.values["correlation_id"])
        related = q.unique(ctx.events(q.correlated(ctx.database, who.tenant, corr))) if corr else []
        return models.EventDetail.of(row, parent[0] if parent else None, kids, related)

    @app.get("/v1/entities/{entity_type}/{entity_id}/timeline", response_model=models.Timeline,
             tags=["events"])  # fmt: skip
    def timeline(
        who: Reader,
        entity_type: str,
        entity_id: str,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
        limit: Annotated[int, Query(ge=1, le=q.MAX_PAGE)] = q.MAX_PAGE,
        cursor: str | None = None,
    ) -> models.Timeline:
        """Every change to one entity, oldest first, each with its before -> after values
        and whether a cascade made it. Default range: the longest one allowed."""
        if not entity_type.strip() or not entity_id.strip():
            raise q.BadRequest("an entity's type and id must not be blank")
        f = _filters(ctx, ctx.api.max_range_days, start, end, None, None, None, False,
                     [entity_type], entity_id, None, None, None, None)  # fmt: skip
        at = q.Cursor.decode(cursor) if cursor else None
        f = q.apply_cursor(f, at, q.Sort.OLDEST, ctx.api.max_range_days)
        rows = ctx.events(q.page(ctx.database, who.tenant, f, q.Sort.OLDEST, limit, at))
        more = len(rows) > limit
        cursor_row = rows[limit - 1] if more else None
        rows = q.unique(rows[:limit])
        return models.Timeline(
            entity=models.EntityOut(
                type=f.resource_types[0],
                id=entity_id,
                name=str(rows[-1].values["resource_name"]) if rows else "",
            ),
            data=[
                models.TimelineEntry(
                    event=models.EventSummary.of(r),
                    cascade=bool(r.values["parent_event_id"] or r.values["correlation_id"]),
                )
                for r in rows
            ],
            next_cursor=None
            if cursor_row is None
            else cursor_row.cursor(q.Sort.OLDEST, f).encode(),
        )

    # -- analytics -----------------------------------------------------------------------
    def _total(tenant: str, f: q.Filters) -> int:
        return int(ctx.scalar_row(q.count(ctx.database, tenant, f))[0])

    def _counts(
        tenant: str, f: q.Filters, dim: q.Dimension, limit: int, modifying: bool = False
    ) -> models.Counts:
        result = ctx.run(q.counts_by(ctx.database, tenant, f, dim, limit, modifying))
        return models.Counts(
            dimension=dim.value, range_from=f.start, range_to=f.end, total=_total(tenant, f),
            data=[models.CountItem(key=str(k), label=str(lb), kind=str(kd), count=int(n))
                  for k, lb, kd, n in result.result_rows],
        )  # fmt: skip

    @app.get("/v1/analytics/summary", response_model=models.Summary, tags=["analytics"])
    def summary(who: Reader, f: F) -> models.Summary:
        """Events, unique entities and unique actors for the filters."""
        events, entities, actors = ctx.scalar_row(q.summary(ctx.database, who.tenant, f))
        return models.Summary(range_from=f.start, range_to=f.end, events=int(events),
                              unique_entities=int(entities), unique_actors=int(actors))  # fmt: skip

    @app.get("/v1/analytics/counts", response_model=models.Counts, tags=["analytics"])
    def counts(
        who: Reader, f: F, dimension: q.Dimension = q.Dimension.ACTION, limit: Limit = 100
    ) -> models.Counts:
        """Events per action, entity type, actor type, actor or outcome, largest first."""
        return _counts(who.tenant, f, dimension, limit)

    @app.get("/v1/analytics/trend", response_model=models.Trend, tags=["analytics"])
    def trend(who: Reader, f: F, interval: q.Interval = q.Interval.DAY) -> models.Trend:
        """Events per hour, day or week (UTC; weeks start on Monday), every bucket listed."""
        steps = (f.end - f.start) / q.INTERVAL_STEP[interval]
        if steps > 10_000:
            raise q.BadRequest(
                f"{int(steps)} {interval.value}s: narrow the range or widen the interval"
            )
        result = ctx.run(q.trend(ctx.database, who.tenant, f, interval))
        return models.Trend(
            interval=interval.value, range_from=f.start, range_to=f.end,
            data=[models.TrendPoint(start=at, count=n)
                  for at, n in q.filled(result.result_rows, f, interval)],
        )  # fmt: skip

    @app.get("/v1/analytics/top-actors", response_model=models.Counts, tags=["analytics"])
    def top_actors(who: Reader, f: F, limit: Limit = 10) -> models.Counts:
        """The most active actors."""
        return _counts(who.tenant, f, q.Dimension.ACTOR, limit)

    @app.get("/v1/analytics/top-entity-types", response_model=models.Counts, tags=["analytics"])
    def top_entity_types(who: Reader, f: F, limit: Limit = 10) -> models.Counts:
        """The most modified entity types (create, update, delete, restore, status change,
        comment, assign)."""
        return _counts(who.tenant, f, q.Dimension.ENTITY_TYPE, limit, modifying=True)

    # -- exports -------------------------------------------------------------------------
    def _job_out(job: Job) -> models.ExportJob:
        return models.ExportJob(
            id=job.id, format=job.format.value, status=job.status,  # type: ignore[arg-type]
            rows_total=job.rows_total, rows_written=job.rows_written, progress=job.progress,
            created_at=job.created_at, finished_at=job.finished_at, error=job.error,
            download_url=f"/v1/exports/{job.id}/download" if job.status == "done" else None,
        )  # fmt: skip

    @app.get("/v1/exports/stream", tags=["exports"],
             responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()},
                              "description": "The export file"},
                        413: {"model": models.ErrorResponse}})  # fmt: skip
    def export_stream(
        who: Exporter, f: F, format: Format = Format.CSV, sort: q.Sort = q.Sort.NEWEST
    ) -> Any:
        """A small export (fewer than 100,000 rows), streamed as it is read. Larger ones:
        `POST /v1/exports`."""
        total = _total(who.tenant, f)
        if total >= ctx.api.export_job_rows:
            raise ApiError(
                413, "too_large",
                f"{total} rows: exports of {ctx.api.export_job_rows} rows or more run as "
                "jobs: POST /v1/exports with the same parameters",
            )  # fmt: skip
        name = f"audit-log-{ctx.clock():%Y%m%dT%H%M%SZ}.{format.value}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        rows = ctx.iter_rows(who.tenant, f, sort)
        if format in (Format.CSV, Format.JSONL):
            return StreamingResponse(stream_text(format, rows), media_type=MEDIA_TYPES[format],
                                     headers=headers)  # fmt: skip
        ctx.jobs.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = ctx.jobs.directory / f"stream-{secrets.token_hex(8)}.{format.value}"
        try:
            write(format, rows, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return FileResponse(tmp, media_type=MEDIA_TYPES[format], headers=headers,
                            background=BackgroundTask(tmp.unlink, missing_ok=True))  # fmt: skip

    @app.post("/v1/exports", response_model=models.ExportJob, status_code=202, tags=["exports"])
    def export_job(
        who: Exporter, f: F, format: Format = Format.CSV, sort: q.Sort = q.Sort.NEWEST
    ) -> models.ExportJob:
        """An export of any size as a background job: poll `GET /v1/exports/{id}`, then
        download from its `download_url`."""
        total = _total(who.tenant, f)
        tenant = who.tenant
        job = ctx.jobs.start(tenant, format, total, lambda: ctx.iter_rows(tenant, f, sort))
        return _job_out(job)

    def _job(who: Caller, job_id: str) -> Job:
        job = ctx.jobs.get(who.tenant, job_id)
        if job is None:
            raise ApiError(404, "not_found", "no such export")
        return job

    @app.get("/v1/exports/{job_id}", response_model=models.ExportJob, tags=["exports"])
    def export_status(who: Exporter, job_id: str) -> models.ExportJob:
        """An export job's progress and, once done, its download link."""
        return _job_out(_job(who, job_id))

    @app.get("/v1/exports/{job_id}/download", tags=["exports"],
             responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}})  # fmt: skip
    def export_download(who: Exporter, job_id: str) -> FileResponse:
        """The finished export's file."""
        job = _job(who, job_id)
        if job.status != "done":
            raise ApiError(404, "not_found", f"export {job.id} is {job.status}, not done")
        return FileResponse(
            ctx.jobs.path(job), media_type=MEDIA_TYPES[job.format],
            filename=f"audit-log-{job.id}.{job.format.value}",
            headers={"X-Content-SHA256": job.sha256 or ""},
        )  # fmt: skip

    from auditstream.api.reviews import router as reviews_router

    app.include_router(reviews_router(ctx))  # /v1/reviews (docs/reviews.md)
    from auditstream.viewer import mount as mount_viewer

    mount_viewer(app, ctx, needs(Scope.READ))  # the web viewer at /ui/, and its /v1/alerts
    return app
