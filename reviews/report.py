"""The review report for one tenant and period, computed from the store.

Every statement is parameterised (``{name:Type}``) and starts its ``WHERE`` with the tenant;
the only text put into SQL is the database name from the settings. Completeness (the
reconciliation and verification results) is measured by the caller and passed in
(``Completeness``), so this module only reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from auditstream.producers.acknowledged import SYSTEM_TENANT
from auditstream.reviews.checklist import DEFAULT, MASS_THRESHOLD, ODD_HOURS, Check
from auditstream.reviews.schedule import REVIEW_RESOURCE, Reader

"""Where store-wide changes (retention) are recorded (``cli/retention.py``)."""
DRILL_COMMAND = "auditstream archive drill"
"""The export-and-restore drill records its result with this ``metadata.command``."""
MAX_FINDINGS = 1000
"""Per section: a report lists at most this many (and says how many more there were)."""
ACCESS_ACTIONS = ("settings_change", "role_change", "permission_change", "invite")
INTEGRATION_ACTIONS = ("integration_connect", "integration_disconnect")

_COLUMNS = (
    "toString(event_id), toUnixTimestamp64Milli(occurred_at), actor_id, action, resource_type, "
    "resource_id, resource_name, outcome, ip, country, actor_timezone, changes.field, "
    "changes.old, changes.new"
)
_PERIOD = (
    "tenant_id = {tenant:String} "
    "AND occurred_at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
    "AND occurred_at < fromUnixTimestamp64Milli({hi:Int64}, 'UTC')"
)


@dataclass(frozen=True)
class Finding:
    section: str
    occurred_at: str
    actor_id: str
    action: str
    resource: str
    outcome: str
    ip: str
    country: str
    detail: str
    changes: str = ""
    event_ids: tuple[str, ...] = ()

    @property
    def links(self) -> list[str]:
        return [f"/ui/#/events/{e}" for e in self.event_ids]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    findings: tuple[Finding, ...]
    more: int = 0


@dataclass(frozen=True)
class Completeness:
    verification: str
    """``OK``, ``TAMPERED``, or why it was not run."""
    verification_detail: tuple[str, ...] = ()
    reconciliation: str = "not run"
    reconciliation_detail: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verification == "OK" and self.reconciliation == "OK"


@dataclass(frozen=True)
class Report:
    tenant: str
    period_from: datetime
    period_to: datetime
    generated_at: datetime
    generator: str
    key_fingerprint: str
    total: int
    previous_total: int
    by_day: tuple[tuple[str, int], ...]
    by_action: tuple[tuple[str, int], ...]
    sections: tuple[Section, ...]
    completeness: Completeness
    signoffs: tuple[dict[str, str], ...] = ()
    drills: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def review_id(self) -> str:
        return f"{self.tenant}:{self.period_from:%Y-%m-%d}..{self.period_to:%Y-%m-%d}"

    def findings(self) -> list[Finding]:
        return [f for s in self.sections for f in s.findings]

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["review_id"] = self.review_id
        for key in ("period_from", "period_to", "generated_at"):
            doc[key] = _iso(getattr(self, key))
        for s, section in zip(doc["sections"], self.sections, strict=True):
            for f, finding in zip(s["findings"], section.findings, strict=True):
                f["links"] = finding.links
        doc["completeness"]["ok"] = self.completeness.ok
        return doc


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _finding(section: str, row: Sequence[Any], detail: str) -> Finding:
    eid, ms, actor, action, rtype, rid, rname, outcome, ip, country, _tz, cf, co, cn = row
    changes = "; ".join(
        f"{f}: {o} -> {n}" for f, o, n in zip(cf or (), co or (), cn or (), strict=False)
    )
    resource = f"{rtype} {rid}" + (f" ({rname})" if rname else "")
    return Finding(
        section, _iso(_at(ms)), str(actor), str(action), resource, str(outcome),
        str(ip or ""), str(country or ""), detail, changes, (str(eid),),
    )  # fmt: skip


class ReportBuilder:
    def __init__(self, read: Reader, database: str, tenant: str, lo: datetime, hi: datetime):
        if hi <= lo:
            raise ValueError("the period's end must be after its start")
        self.read, self.db, self.tenant, self.lo, self.hi = read, database, tenant, lo, hi
        self.params: dict[str, Any] = {"tenant": tenant, "lo": _ms(lo), "hi": _ms(hi)}

    @property
    def events(self) -> str:
        return f"`{self.db}`.`audit_events`"

    def _rows(self, where: str, extra: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        return list(
            self.read(
                f"SELECT {_COLUMNS} FROM {self.events} WHERE {_PERIOD} AND {where} "
                "ORDER BY occurred_at, event_id LIMIT {limit:UInt32}",
                {**self.params, "limit": MAX_FINDINGS + 1, **(extra or {})},
            )
        )

    def _section(self, key: str, findings: list[Finding]) -> Section:
        title = dict(DEFAULT).get(key, key.removeprefix("custom:"))
        more = max(0, len(findings) - MAX_FINDINGS)
        return Section(key, title, tuple(findings[:MAX_FINDINGS]), more)

    # -- the default checklist ----------------------------------------------------------
    def unexpected_access(self) -> Section:
        rows = self._rows("action = 'sign_in' AND outcome = 'success'")
        known = {
            (str(a), str(c))
            for a, c in self.read(
                f"SELECT DISTINCT actor_id, country FROM {self.events} "
                "WHERE tenant_id = {tenant:String} AND action = 'sign_in' "
                "AND outcome = 'success' AND country != '' "
                "AND occurred_at < fromUnixTimestamp64Milli({lo:Int64}, 'UTC')",
                self.params,
            )
        }
        seen = {a for a, _ in known}
        out = []
        for row in rows:
            actor, country, tz = str(row[2]), str(row[9] or ""), str(row[10] or "")
            reasons = []
            if country and actor in seen and (actor, country) not in known:
                reasons.append(f"first sign-in from {country}")
            hour = _local_hour(_at(row[1]), tz)
            if hour >= ODD_HOURS[0] or hour < ODD_HOURS[1]:
                reasons.append(f"at {hour:02d}h {'local' if tz else 'UTC'}")
            if country:
                known.add((actor, country))
                seen.add(actor)
            if reasons:
                out.append(_finding("unexpected_access", row, "sign-in " + ", ".join(reasons)))
        return self._section("unexpected_access", out)

    def failed_actions(self) -> Section:
        rows = self._rows("outcome IN ('failure', 'denied')")
        return self._section(
            "failed_actions", [_finding("failed_actions", r, f"{r[7]}") for r in rows]
        )

    def mass_deletions_exports(self) -> Section:
        bursts = self.read(
            f"SELECT actor_id, toStartOfHour(occurred_at) AS hour, count() AS n, "
            f"groupArray(100)(toString(event_id)), toUnixTimestamp64Milli(min(occurred_at)) "
            f"FROM {self.events} WHERE {_PERIOD} AND action = 'delete' "
            "GROUP BY actor_id, hour HAVING n >= {threshold:UInt32} ORDER BY hour, actor_id",
            {**self.params, "threshold": MASS_THRESHOLD},
        )
        out = [
            Finding(
                "mass_deletions_exports",
                _iso(_at(first)),
                str(actor),
                "delete",
                "",
                "",
                "",
                "",
                f"{n} deletions within the hour",
                "",
                tuple(str(i) for i in ids),
            )
            for actor, _hour, n, ids, first in bursts
        ]
        out += [
            _finding("mass_deletions_exports", r, "export") for r in self._rows("action = 'export'")
        ]
        out.sort(key=lambda f: f.occurred_at)
        return self._section("mass_deletions_exports", out)

    def _by_actions(self, key: str, actions: tuple[str, ...]) -> Section:
        rows = self._rows("action IN {actions:Array(String)}", {"actions": list(actions)})
        return self._section(key, [_finding(key, r, str(r[3])) for r in rows])

    def alerts(self) -> Section:
        rows = self.read(
            "SELECT toString(alert_id), toUnixTimestamp64Milli(min(detected_at)), "
            "any(actor_id), any(rule), any(severity), any(subject), any(title), "
            "arrayMap(x -> toString(x), any(evidence_event_ids)) "
            f"FROM `{self.db}`.`security_alerts` WHERE tenant_id = {{tenant:String}} "
            "AND window_start < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "AND window_end >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "GROUP BY alert_id ORDER BY 2 LIMIT {limit:UInt32}",
            {**self.params, "limit": MAX_FINDINGS + 1},
        )
        out = [
            Finding(
                "alerts",
                _iso(_at(ms)),
                str(actor or ""),
                str(rule),
                f"alert {alert_id}",
                "raised",
                "",
                "",
                f"{severity}: {title} (about {subject})",
                "",
                tuple(ids or ()),
            )
            for alert_id, ms, actor, rule, severity, subject, title, ids in rows
        ]
        return self._section("alerts", out)

    def timeline_gaps(self, by_day: Sequence[tuple[str, int]]) -> Section:
        """Days of the period with no event at all, between days that have events."""
        busy = [i for i, (_, n) in enumerate(by_day) if n]
        out = []
        if busy:
            for day, n in by_day[busy[0] : busy[-1] + 1]:
                if not n:
                    out.append(
                        Finding(
                            "timeline_gaps",
                            f"{day}T00:00:00.000Z",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            f"no events on {day} (UTC)",
                        )
                    )
        return self._section("timeline_gaps", out)

    def scope_changes(self) -> Section:
        rows = list(
            self.read(
                f"SELECT {_COLUMNS} FROM {self.events} "
                "WHERE tenant_id IN ({tenant:String}, {system:String}) "
                "AND occurred_at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
                "AND occurred_at < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
                "AND resource_type IN ('retention_policy', 'recording_scope') "
                "ORDER BY occurred_at LIMIT {limit:UInt32}",
                {**self.params, "system": SYSTEM_TENANT, "limit": MAX_FINDINGS + 1},
            )
        )
        return self._section(
            "scope_changes",
            [_finding("scope_changes", r, "retention or recording scope change") for r in rows],
        )

    def custom(self, check: Check) -> Section:
        parts, extra = ["1"], {}
        if check.actions:
            parts.append("action IN {c_actions:Array(String)}")
            extra["c_actions"] = list(check.actions)
        if check.resource_types:
            parts.append("resource_type IN {c_types:Array(String)}")
            extra["c_types"] = list(check.resource_types)
        if check.outcomes:
            parts.append("outcome IN {c_outcomes:Array(String)}")
            extra["c_outcomes"] = list(check.outcomes)
        rows = self._rows(" AND ".join(parts), extra)
        return self._section(check.key, [_finding(check.key, r, check.name) for r in rows])

    # -- counts -------------------------------------------------------------------------
    def count(self, lo: datetime, hi: datetime) -> int:
        rows = self.read(
            f"SELECT count() FROM {self.events} WHERE {_PERIOD}",
            {**self.params, "lo": _ms(lo), "hi": _ms(hi)},
        )
        return int(rows[0][0]) if rows else 0

    def by_day(self) -> list[tuple[str, int]]:
        rows = self.read(
            f"SELECT toString(toDate(occurred_at, 'UTC')) AS d, count() FROM {self.events} "
            f"WHERE {_PERIOD} GROUP BY d ORDER BY d",
            self.params,
        )
        counts = {str(d): int(n) for d, n in rows}
        out, day = [], self.lo.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day < self.hi:
            key = f"{day:%Y-%m-%d}"
            out.append((key, counts.get(key, 0)))
            day += timedelta(days=1)
        return out

    def by_action(self) -> list[tuple[str, int]]:
        rows = self.read(
            f"SELECT action, count() AS n FROM {self.events} WHERE {_PERIOD} "
            "GROUP BY action ORDER BY n DESC, action LIMIT 20",
            self.params,
        )
        return [(str(a), int(n)) for a, n in rows]

    def drills(self) -> list[dict[str, str]]:
        """Results of the export-and-restore drill recorded in the period (this tenant's log
        or the store-wide one)."""
        rows = self.read(
            "SELECT toString(event_id), toUnixTimestamp64Milli(occurred_at), outcome, "
            f"tenant_id FROM {self.events} WHERE tenant_id IN ({{tenant:String}}, "
            "{system:String}) AND occurred_at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND occurred_at < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "AND JSONExtractString(metadata, 'command') = {command:String} "
            "ORDER BY occurred_at",
            {**self.params, "system": SYSTEM_TENANT, "command": DRILL_COMMAND},
        )
        return [
            {"event_id": str(e), "at": _iso(_at(ms)), "outcome": str(o), "recorded_in": str(t)}
            for e, ms, o, t in rows
        ]


def _local_hour(at: datetime, tz: str) -> int:
    if tz:
        try:
            return at.astimezone(ZoneInfo(tz)).hour
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return at.hour


def build(
    read: Reader,
    database: str,
    tenant: str,
    lo: datetime,
    hi: datetime,
    completeness: Completeness,
    *,
    checks: Sequence[Check] = (),
    key_fingerprint: str = "",
    generator: str = "",
    now: datetime | None = None,
) -> Report:
    b = ReportBuilder(read, database, tenant, lo, hi)
    by_day = b.by_day()
    sections = [
        b.unexpected_access(),
        b.failed_actions(),
        b.mass_deletions_exports(),
        b._by_actions("access_changes", ACCESS_ACTIONS),
        b._by_actions("new_integrations", INTEGRATION_ACTIONS),
        b.alerts(),
        b.timeline_gaps(by_day),
        b.scope_changes(),
        *(b.custom(c) for c in checks),
    ]
    from auditstream.reviews.schedule import signoffs

    done = [
        {"event_id": s.event_id, "by": s.by, "at": _iso(s.at), "period_from": s.period_from,
         "period_to": s.period_to, "note": s.note}
        for s in signoffs(read, database, tenant)
        if s.period_from == _iso(lo) and s.period_to == _iso(hi)
    ]  # fmt: skip
    return Report(
        tenant=tenant,
        period_from=lo,
        period_to=hi,
        generated_at=now or datetime.now(UTC),
        generator=generator or version(),
        key_fingerprint=key_fingerprint,
        total=b.count(lo, hi),
        previous_total=b.count(lo - (hi - lo), lo),
        by_day=tuple(by_day),
        by_action=tuple(b.by_action()),
        sections=tuple(sections),
        completeness=completeness,
        signoffs=tuple(done),
        drills=tuple(b.drills()),
    )


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return f"auditstream {package_version('auditstream')}"
    except PackageNotFoundError:
        return "auditstream (unpackaged)"


__all__ = ["REVIEW_RESOURCE", "Completeness", "Finding", "Report", "Section", "build"]
