"""The activity window and its features: one definition for training and for scoring.

A **window** is one actor's events (one tenant) in one UTC hour, by event time
(``occurred_at``), aligned to the hour. Its **summary** is a handful of counters:

=====================  =====================================================================
``events``             all events
``reads`` ...          events per action class (``ACTION_CLASSES``; every action is in one)
``failures``           outcome ``failure`` / ``denied``, or a ``sign_in_failed`` action
``off_hours``          events outside 07:00-19:00 or on a weekend, on the actor's wall clock
                       (the actor's time zone, else UTC)
``distinct_resources`` distinct (resource type, resource id), capped at 500
=====================  =====================================================================

Training computes summaries with one SQL query over ``audit_events`` (``window_sql``); the
stream agent folds events into the same summaries (``new_window`` / ``add``). Both paths are
generated here from the same constants, and both end in ``feature_vector``, the one function
that turns a summary into the model's input. ``tests/unit/test_anomaly_features.py`` checks
that the two paths agree on the same events (the drift check), and ``FEATURE_SET_ID`` (a
digest of this definition) is stored in every model file, so a model trained on another
definition is refused at load time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson
from numpy.typing import NDArray

from auditstream.schemas.actions import Action
from auditstream.schemas.event import AuditEvent, Outcome

WINDOW_SECONDS = 3600
WINDOW_MS = WINDOW_SECONDS * 1000
MAX_DISTINCT_RESOURCES = 500
WORK_START_HOUR = 7
WORK_END_HOUR = 19
WEEKEND = (6, 7)
"""ISO weekdays that are off-hours all day: Saturday and Sunday."""

ACTION_CLASSES: dict[str, tuple[Action, ...]] = {
    "reads": (Action.ACCESS,),
    "writes": (
        Action.CREATE,
        Action.UPDATE,
        Action.STATUS_CHANGE,
        Action.COMMENT,
        Action.ASSIGN,
        Action.RESTORE,
    ),
    "deletes": (Action.DELETE,),
    "exports": (Action.EXPORT,),
    "sign_ins": (Action.SIGN_IN, Action.SIGN_OUT),
    "failed_sign_ins": (Action.SIGN_IN_FAILED,),
    "admin_actions": (
        Action.PERMISSION_CHANGE,
        Action.ROLE_CHANGE,
        Action.INVITE,
        Action.SETTINGS_CHANGE,
        Action.INTEGRATION_CONNECT,
        Action.INTEGRATION_DISCONNECT,
    ),
}
CLASS_OF: dict[str, str] = {a.value: cls for cls, acts in ACTION_CLASSES.items() for a in acts}

COUNTERS: tuple[str, ...] = ("events", *ACTION_CLASSES, "failures", "off_hours")
"""The summed counters of a window, in the order the stream state keeps them."""


class WindowSummary(NamedTuple):
    """What training (SQL) and scoring (stream) both compute for one window."""

    events: int
    reads: int
    writes: int
    deletes: int
    exports: int
    sign_ins: int
    failed_sign_ins: int
    admin_actions: int
    failures: int
    off_hours: int
    distinct_resources: int


assert WindowSummary._fields == (*COUNTERS, "distinct_resources")


@dataclass(frozen=True)
class Feature:
    name: str
    transform: str
    """``log1p`` for counts (heavy-tailed), ``identity`` for shares."""
    unit: str
    label: str


FEATURES: tuple[Feature, ...] = (
    Feature("events", "log1p", "events/h", "events"),
    *(Feature(name, "log1p", "events/h", name.replace("_", " ")) for name in ACTION_CLASSES),
    Feature("distinct_resources", "log1p", "resources/h", "distinct resources"),
    Feature("failure_ratio", "identity", "share", "failure ratio"),
    Feature("off_hours_share", "identity", "share", "off-hours share"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def feature_vector(summary: WindowSummary) -> tuple[float, ...]:
    """The features of a window, in ``FEATURE_NAMES`` order (before the transform)."""
    events = summary.events
    return (
        float(events),
        *(float(getattr(summary, name)) for name in ACTION_CLASSES),
        float(summary.distinct_resources),
        summary.failures / events if events else 0.0,
        summary.off_hours / events if events else 0.0,
    )


_LOG_COLUMNS = np.asarray([f.transform == "log1p" for f in FEATURES])


def model_space(rows: Sequence[Sequence[float]] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Feature vectors (rows) on the scale the forest splits on: log counts, raw shares."""
    x = np.array(rows, dtype=np.float64, ndmin=2)
    if x.shape[1] != len(FEATURES):
        raise ValueError(f"expected {len(FEATURES)} features per row, got {x.shape[1]}")
    x[:, _LOG_COLUMNS] = np.log1p(np.maximum(x[:, _LOG_COLUMNS], 0.0))
    return x


def _definition_digest() -> str:
    spec = {
        "window_seconds": WINDOW_SECONDS,
        "max_distinct_resources": MAX_DISTINCT_RESOURCES,
        "work_hours": [WORK_START_HOUR, WORK_END_HOUR],
        "weekend": list(WEEKEND),
        "classes": {k: [a.value for a in v] for k, v in ACTION_CLASSES.items()},
        "features": [[f.name, f.transform] for f in FEATURES],
        "failures": "outcome!=success|sign_in_failed",
    }
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


FEATURE_SET_ID = _definition_digest()
"""Changes whenever the definition above changes; a model records the one it was trained on."""


# --- one event ------------------------------------------------------------------------------

_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


@lru_cache(maxsize=1024)
def usable_zone(name: str) -> bool:
    """A zone both Python and the SQL can name: ``[A-Za-z0-9_+-/]`` and known to IANA."""
    if not name or not _ZONE_NAME.match(name):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def is_off_hours(occurred_ms: int, zone: str) -> bool:
    local = datetime.fromtimestamp(occurred_ms / 1000, tz=UTC)
    if zone and zone != "UTC" and usable_zone(zone):
        local = local.astimezone(ZoneInfo(zone))
    return (
        local.hour < WORK_START_HOUR or local.hour >= WORK_END_HOUR or local.isoweekday() in WEEKEND
    )


def window_start(occurred_ms: int) -> int:
    return occurred_ms // WINDOW_MS * WINDOW_MS


class EventFacts(NamedTuple):
    """The part of an event the window features read."""

    occurred_ms: int
    action: str
    failed: bool
    resource: str
    zone: str
    event_id: str


def millis(value: datetime) -> int:
    return int(value.timestamp()) * 1000 + value.microsecond // 1000


def facts_from_event(event: AuditEvent) -> EventFacts:
    return EventFacts(
        occurred_ms=millis(event.occurred_at),
        action=event.action.value,
        failed=event.outcome is not Outcome.SUCCESS or event.action is Action.SIGN_IN_FAILED,
        resource=f"{event.resource.type}\x1f{event.resource.id}",
        zone=event.actor.timezone or "",
        event_id=str(event.event_id),
    )


# --- the stream path: a window as JSON-serialisable state -----------------------------------

MAX_EVIDENCE_IDS = 20


def new_window() -> dict[str, Any]:
    """``k``: ``COUNTERS``; ``r``: resource digests (capped); ``f``/``l``: first/last event
    time (ms); ``e``: the latest event ids, for the alert's evidence."""
    return {"k": [0] * len(COUNTERS), "r": [], "f": None, "l": None, "e": []}


def _resource_digest(resource: str) -> int:
    return int.from_bytes(hashlib.blake2b(resource.encode(), digest_size=6).digest(), "big")


_INDEX = {name: i for i, name in enumerate(COUNTERS)}


def add(window: dict[str, Any], facts: EventFacts) -> None:
    """Fold one event into a window (in place)."""
    counts: list[int] = window["k"]
    counts[_INDEX["events"]] += 1
    cls = CLASS_OF.get(facts.action)
    if cls is not None:
        counts[_INDEX[cls]] += 1
    if facts.failed:
        counts[_INDEX["failures"]] += 1
    if is_off_hours(facts.occurred_ms, facts.zone):
        counts[_INDEX["off_hours"]] += 1
    resources: list[int] = window["r"]
    if len(resources) < MAX_DISTINCT_RESOURCES:
        digest = _resource_digest(facts.resource)
        if digest not in resources:
            resources.append(digest)
    first, last = window["f"], window["l"]
    window["f"] = facts.occurred_ms if first is None else min(first, facts.occurred_ms)
    window["l"] = facts.occurred_ms if last is None else max(last, facts.occurred_ms)
    evidence: list[str] = window["e"]
    evidence.append(facts.event_id)
    del evidence[:-MAX_EVIDENCE_IDS]


def summary_of(window: dict[str, Any]) -> WindowSummary:
    return WindowSummary._make([*window["k"], min(len(window["r"]), MAX_DISTINCT_RESOURCES)])


# --- the training path: the same summaries in SQL -------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _off_hours_sql(zone: str) -> str:
    z = _sql_str(zone)
    hour = f"toHour(occurred_at, {z})"
    weekend = ", ".join(str(d) for d in WEEKEND)
    return (
        f"({hour} < {WORK_START_HOUR} OR {hour} >= {WORK_END_HOUR} "
        f"OR toDayOfWeek(occurred_at, 0, {z}) IN ({weekend}))"
    )


def off_hours_sql(zones: Iterable[str]) -> str:
    """ClickHouse wants a constant zone per call: one branch per zone seen in the data."""
    branches = [
        f"actor_timezone = {_sql_str(z)}, {_off_hours_sql(z)}"
        for z in sorted(set(zones))
        if z != "UTC" and usable_zone(z)
    ]
    fallback = _off_hours_sql("UTC")
    if not branches:
        return fallback
    return "multiIf(" + ", ".join([*branches, fallback]) + ")"


def _sql_time(value: datetime) -> str:
    stamp = (
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    )
    return f"toDateTime64('{stamp}', 3, 'UTC')"


def time_range_sql(start: datetime, end: datetime) -> str:
    return f"occurred_at >= {_sql_time(start)} AND occurred_at < {_sql_time(end)}"


def zones_sql(start: datetime, end: datetime, table: str = "audit_events") -> str:
    return f"SELECT DISTINCT actor_timezone FROM {table} WHERE {time_range_sql(start, end)}"


WINDOW_COLUMNS: tuple[str, ...] = (
    "tenant_id",
    "actor_id",
    "window_start",
    *WindowSummary._fields,
    "first_ms",
    "last_ms",
)


def window_sql(
    start: datetime, end: datetime, zones: Iterable[str], table: str = "audit_events"
) -> str:
    """One row per (tenant, actor, hour) with ``WINDOW_COLUMNS``.

    ``FINAL`` folds any duplicate row not merged away yet, so each event counts once.
    """
    classes = [
        f"countIf(action IN ({', '.join(_sql_str(a.value) for a in acts)})) AS {name}"
        for name, acts in ACTION_CLASSES.items()
    ]
    failed = f"outcome != 'success' OR action = {_sql_str(Action.SIGN_IN_FAILED.value)}"
    ms = "toUnixTimestamp64Milli(occurred_at)"
    columns = [
        "tenant_id",
        "actor_id",
        f"intDiv({ms}, {WINDOW_MS}) * {WINDOW_MS} AS window_start",
        "count() AS events",
        *classes,
        f"countIf({failed}) AS failures",
        f"countIf({off_hours_sql(zones)}) AS off_hours",
        f"least(uniqExact(resource_type, resource_id), {MAX_DISTINCT_RESOURCES}) "
        "AS distinct_resources",
        f"min({ms}) AS first_ms",
        f"max({ms}) AS last_ms",
    ]
    body = ",\n    ".join(columns)
    return (
        f"SELECT\n    {body}\nFROM {table} FINAL\n"
        f"WHERE {time_range_sql(start, end)}\n"
        "GROUP BY tenant_id, actor_id, window_start\n"
        "ORDER BY tenant_id, actor_id, window_start"
    )


class SqlWindow(NamedTuple):
    tenant_id: str
    actor_id: str
    start_ms: int
    summary: WindowSummary
    first_ms: int
    last_ms: int


def window_from_row(row: Sequence[Any]) -> SqlWindow:
    """A ``window_sql`` row (``WINDOW_COLUMNS`` order)."""
    n = len(WindowSummary._fields)
    summary = WindowSummary._make(int(v) for v in row[3 : 3 + n])
    return SqlWindow(
        str(row[0]), str(row[1]), int(row[2]), summary, int(row[3 + n]), int(row[4 + n])
    )
