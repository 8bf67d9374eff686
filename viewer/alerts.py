"""``GET /v1/alerts`` and ``GET /v1/alerts/summary``: the tenant's security alerts, for the
viewer's alerts page and dashboard.

Like the events endpoints, every statement starts its ``WHERE`` with the caller's tenant
and takes every request value as a query parameter.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which
# name types local to `router`.
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from auditstream.api import query as q
from auditstream.schemas.alert import Severity
from auditstream.sinks.tables import ALERTS_TABLE

if TYPE_CHECKING:
    from auditstream.api.app import Context

SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL,
)  # fmt: skip
MAX_ALERTS = 200

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "toString(alert_id)"),
    ("rule", "rule"),
    ("severity", "severity"),
    ("actor_id", "actor_id"),
    ("subject", "subject"),
    ("title", "title"),
    ("explanation", "explanation"),
    ("metric", "observations.metric"),
    ("observed", "observations.observed"),
    ("baseline", "observations.baseline"),
    ("unit", "observations.unit"),
    ("window_start_ms", "toUnixTimestamp64Milli(window_start)"),
    ("window_end_ms", "toUnixTimestamp64Milli(window_end)"),
    ("detected_ms", "toUnixTimestamp64Milli(detected_at)"),
    ("evidence", "arrayMap(x -> toString(x), evidence_event_ids)"),
    ("mitre_technique", "mitre_technique"),
    ("mitre_name", "mitre_name"),
    ("context", "context"),
)
_SELECT = ", ".join(expr if expr == name else f"{expr} AS {name}" for name, expr in _COLUMNS)
"""Aliases never shadow a column: ClickHouse would use the alias in ``WHERE`` and ``ORDER BY``."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ObservationOut(_Out):
    metric: str
    observed: float
    baseline: float | None
    unit: str


class AlertOut(_Out):
    alert_id: str
    rule: str
    severity: str
    actor_id: str | None
    subject: str = Field(description="Who or what the alert is about: an actor id or an IP")
    title: str
    explanation: str
    observations: list[ObservationOut] = Field(description="Observed against baseline")
    window_start: datetime
    window_end: datetime
    detected_at: datetime
    evidence_event_ids: list[str] = Field(description="Events that made the alert")
    mitre_technique: str
    mitre_name: str
    context: dict[str, Any]


class AlertPage(_Out):
    data: list[AlertOut] = Field(description="Newest detection first")
    range_from: datetime
    range_to: datetime


class AlertCount(_Out):
    rule: str
    severity: str
    count: int


class AlertSummary(_Out):
    range_from: datetime
    range_to: datetime
    total: int
    data: list[AlertCount] = Field(description="Per rule and severity, largest first")


def _at_least(severity: Severity | None) -> list[str]:
    if severity is None:
        return [s.value for s in SEVERITY_ORDER]
    return [s.value for s in SEVERITY_ORDER[SEVERITY_ORDER.index(severity) :]]


def where(
    tenant: str,
    start: datetime,
    end: datetime,
    min_severity: Severity | None = None,
    rule: str | None = None,
    actor_id: str | None = None,
) -> q.Query:
    """The tenant, the range (of the alert's window start: the table's order) and filters."""
    clauses = [
        "tenant_id = {tenant:String}",
        "window_start >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')",
        "window_start < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')",
        "severity IN {severities:Array(String)}",
    ]
    params: dict[str, Any] = {
        "tenant": tenant, "start_ms": q.to_ms(start), "end_ms": q.to_ms(end),
        "severities": _at_least(min_severity),
    }  # fmt: skip
    if rule:
        clauses.append("rule = {rule:String}")
        params["rule"] = rule
    if actor_id:
        clauses.append("(actor_id = {actor_id:String} OR subject = {actor_id:String})")
        params["actor_id"] = actor_id
    return q.Query(" AND ".join(clauses), params)


def latest(database: str, base: q.Query, limit: int) -> q.Query:
    return q.Query(
        f"SELECT {_SELECT} FROM `{database}`.`{ALERTS_TABLE}` WHERE {base.sql} "
        "ORDER BY detected_at DESC, alert_id DESC LIMIT 1 BY alert_id LIMIT {limit:UInt32}",
        {**base.parameters, "limit": limit},
    )


def by_rule_and_severity(database: str, base: q.Query) -> q.Query:
    return q.Query(
        f"SELECT rule, severity, uniqExact(alert_id) AS n FROM `{database}`.`{ALERTS_TABLE}` "
        f"WHERE {base.sql} GROUP BY rule, severity ORDER BY n DESC, rule, severity",
        base.parameters,
    )


def _json(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def alert_of(row: tuple[Any, ...]) -> AlertOut:
    v = dict(zip((name for name, _ in _COLUMNS), row, strict=True))
    return AlertOut(
        alert_id=v["id"], rule=v["rule"], severity=v["severity"],
        actor_id=v["actor_id"] or None, subject=v["subject"], title=v["title"],
        explanation=v["explanation"],
        observations=[
            ObservationOut(metric=m, observed=o, baseline=b, unit=u)
            for m, o, b, u in zip(v["metric"], v["observed"], v["baseline"], v["unit"],
                                  strict=False)
        ],
        window_start=q.from_ms(v["window_start_ms"]), window_end=q.from_ms(v["window_end_ms"]),
        detected_at=q.from_ms(v["detected_ms"]), evidence_event_ids=list(v["evidence"]),
        mitre_technique=v["mitre_technique"], mitre_name=v["mitre_name"],
        context=_json(v["context"]),
    )  # fmt: skip


def router(ctx: "Context", reader: Callable[..., Any]) -> APIRouter:
    api = APIRouter(tags=["alerts"])
    Reader = Annotated[Any, Depends(reader)]  # noqa: N806

    def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        end = end or ctx.clock()
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        start = start or end - timedelta(days=ctx.api.default_range_days)
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        if start >= end:
            raise q.BadRequest("`from` must be before `to`")
        if end - start > timedelta(days=ctx.api.max_range_days):
            raise q.BadRequest(
                f"the date range covers {(end - start).days} days; at most "
                f"{ctx.api.max_range_days} days per request (AUDITSTREAM_API_MAX_RANGE_DAYS)"
            )
        return start, end

    From = Annotated[datetime | None, Query(alias="from", description="default: 30 days ago")]  # noqa: N806
    To = Annotated[datetime | None, Query(alias="to", description="exclusive; default: now")]  # noqa: N806

    @api.get("/v1/alerts", response_model=AlertPage)
    def alerts(
        who: Reader,
        start: From = None,
        end: To = None,
        min_severity: Severity | None = None,
        rule: str | None = None,
        actor_id: Annotated[str | None, Query(description="The actor (or IP) it is about")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ALERTS)] = 50,
    ) -> AlertPage:
        """The tenant's security alerts, newest detection first, with the explanation,
        observed against baseline values and the evidence events. Poll for new ones."""
        start, end = _range(start, end)
        base = where(who.tenant, start, end, min_severity, (rule or "").strip(), actor_id)
        result = ctx.run(latest(ctx.database, base, limit))
        return AlertPage(
            data=[alert_of(tuple(r)) for r in result.result_rows], range_from=start, range_to=end
        )

    @api.get("/v1/alerts/summary", response_model=AlertSummary)
    def summary(
        who: Reader, start: From = None, end: To = None, min_severity: Severity | None = None
    ) -> AlertSummary:
        """Alerts per rule and severity (the dashboard's chart)."""
        start, end = _range(start, end)
        result = ctx.run(
            by_rule_and_severity(ctx.database, where(who.tenant, start, end, min_severity))
        )
        data = [AlertCount(rule=r, severity=s, count=int(n)) for r, s, n in result.result_rows]
        return AlertSummary(
            range_from=start, range_to=end, total=sum(c.count for c in data), data=data
        )

    return api
