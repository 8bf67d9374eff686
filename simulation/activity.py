"""Benign daily work: sessions, a realistic action mix by role, cascades with before / after.

A user's working day: a sign-in at the start of the day from the office or from home (now
and then after a mistyped password), actions spread over the morning and the afternoon,
often a fresh sign-in after lunch, a quick look from the phone (its app stays signed in
and signs in again about once a week), a sign-out in the evening.
Some users check in in the evening or at weekends (habits the detectors learn); night-shift
workers work 22:00-06:00. Actions follow the role: members track time and work on tasks,
managers run projects, finance invoices clients, admins manage members, settings and
integrations.

Cascades are one request that changes several entities: renaming a project updates each of
its time entries, renaming a client its projects, archiving a project its open tasks,
deleting a project its tasks, deleting a tag the tasks that carried it. Every event of one
cascade shares a ``correlation_id``; the consequences name the parent in ``parent_event_id``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from auditstream.simulation.events import EventFactory, Session, SimEvent, change
from auditstream.simulation.org import Place, Role, Shift, Tenant, User
from auditstream.simulation.registry import INTEGRATIONS, INVOICE_FLOW, TASK_STATUSES, Registry
from auditstream.simulation.timeline import Timeline, at_local

CASCADE_STEP = timedelta(milliseconds=15)
PLAIN_ROLES = ["member", "manager", "finance", "viewer"]
"""Roles background work assigns: none of them grants full control."""

MEMBER_MIX: dict[str, float] = {
    "track_time": 26,
    "edit_time": 6,
    "task_update": 8,
    "task_status": 10,
    "task_create": 5,
    "task_assign": 2,
    "comment": 8,
    "view_doc": 10,
    "view_project": 8,
    "edit_doc": 4,
    "create_doc": 1,
    "tag_task": 3,
    "view_client": 1,
    "contact_update": 1,
    "export_timesheet": 0.5,
    "delete_own": 1.2,
}
MIXES: dict[Role, dict[str, float]] = {
    Role.MEMBER: MEMBER_MIX,
    Role.MANAGER: {
        **MEMBER_MIX,
        "task_assign": 7,
        "project_update": 2,
        "project_rename": 0.5,
        "project_create": 0.5,
        "project_archive": 0.25,
        "project_delete": 0.1,
        "client_rename": 0.15,
        "client_update": 0.5,
        "export_report": 1.0,
    },
    Role.FINANCE: {
        "invoice_create": 4,
        "invoice_update": 4,
        "invoice_status": 5,
        "invoice_export": 2,
        "view_client": 6,
        "client_update": 2,
        "contact_update": 3,
        "contact_create": 1,
        "track_time": 8,
        "view_doc": 5,
        "comment": 3,
        "view_project": 3,
    },
    Role.ADMIN: {
        **MEMBER_MIX,
        "invite": 0.4,
        "role_change": 0.4,
        "settings_change": 0.25,
        "integration": 0.15,
        "share_doc": 2,
        "tag_delete": 0.1,
        "project_rename": 0.3,
        "client_update": 0.5,
    },
    Role.OWNER: {
        **MEMBER_MIX,
        "invite": 0.3,
        "role_change": 0.2,
        "settings_change": 0.2,
        "integration": 0.1,
        "share_doc": 1,
        "export_report": 1.0,
        "project_update": 1,
    },
}
LIGHT_MIX: dict[str, float] = {
    "view_doc": 5,
    "view_project": 3,
    "comment": 2,
    "task_status": 1,
    "track_time": 1,
}
"""Evening, weekend and phone sessions: a look, a comment, a ticked-off task."""


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class Claims:
    """Times when a scenario speaks for a user: their background sessions then are dropped."""

    spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def add(self, tenant_id: str, user_id: str, start: datetime, end: datetime) -> None:
        self.spans.setdefault((tenant_id, user_id), []).append((start, end))

    def busy(self, tenant_id: str, user_id: str, start: datetime, end: datetime) -> bool:
        return any(s < end and start < e for s, e in self.spans.get((tenant_id, user_id), ()))


@dataclass(frozen=True)
class _Intent:
    at: datetime
    user: User
    session: Session
    kind: str


@dataclass
class _Segment:
    start: datetime
    end: datetime
    session: Session
    sign_in: bool
    sign_out: bool
    actions: int
    mix: dict[str, float]


class Activity:
    """One tenant's background work, day by day, against its registry."""

    def __init__(
        self,
        tenant: Tenant,
        registry: Registry,
        rng: random.Random,
        factory: EventFactory,
        timeline: Timeline,
        claims: Claims,
    ) -> None:
        self.tenant = tenant
        self.reg = registry
        self.rng = rng
        self.factory = factory
        self.timeline = timeline
        self.claims = claims
        self.actor_days = 0
        self._phone: dict[str, Session] = {}
        self._phone_week: dict[str, tuple[int, int]] = {}
        self._others = [u.id for u in tenant.users]
        self._handlers: dict[str, Callable[[User, datetime, Session], list[SimEvent]]] = {
            name.removeprefix("_do_"): getattr(self, name)
            for name in dir(self)
            if name.startswith("_do_")
        }

    # The day ------------------------------------------------------------------------------

    def day(self, day: date) -> list[SimEvent]:
        """Every background event of this tenant's people on local date ``day``."""
        segments: list[tuple[User, _Segment]] = []
        for user in self.tenant.users:
            mine = [
                s
                for s in self._segments(user, day)
                if self.timeline.contains(s.start)
                and self.timeline.contains(s.end)
                and not self.claims.busy(user.tenant_id, user.id, s.start, s.end)
            ]
            if mine:
                self.actor_days += 1
            segments += [(user, s) for s in mine]
        intents: list[_Intent] = []
        out: list[SimEvent] = []
        for user, seg in segments:
            if seg.sign_in:
                out += self._sign_in(user, seg.start, seg.session)
            span = (seg.end - seg.start).total_seconds()
            kinds, weights = zip(*seg.mix.items(), strict=True)
            for _ in range(seg.actions):
                at = seg.start + timedelta(seconds=self.rng.uniform(60, max(61.0, span - 60)))
                intents.append(_Intent(at, user, seg.session, self.rng.choices(kinds, weights)[0]))
            if seg.sign_out:
                out.append(
                    self.factory.make(
                        user, "sign_out", seg.end, _session_resource(seg.session), seg.session
                    )
                )
        intents.sort(key=lambda i: i.at)
        for intent in intents:  # in time order, so before / after values chain correctly
            for event in self._handlers[intent.kind](intent.user, intent.at, intent.session):
                changes = event.fields.get("changes")
                if changes and all(c["old"] == c["new"] for c in changes):
                    continue  # an edit that changed nothing is not recorded
                out.append(event)
        return out

    def _segments(self, user: User, day: date) -> list[_Segment]:
        rng, tz = self.rng, user.timezone
        weekday = day.weekday() < 5
        mix = MIXES[user.role]
        if not weekday:
            if rng.random() >= user.weekend_rate:
                return []
            start = at_local(day, rng.uniform(10, 15), tz)
            place = user.home if rng.random() < 0.6 else user.phone
            return [self._segment(user, place, start, rng.uniform(0.4, 1.5), LIGHT_MIX, 1, 5)]
        out: list[_Segment] = []
        place = user.office if rng.random() < user.office_share else user.home
        if user.shift is Shift.NIGHT:
            place = user.office if rng.random() < 0.7 else user.home
        begin = user.work_start + rng.gauss(0, 0.25)
        lunch = begin + 4 + rng.gauss(0, 0.3)
        finish = begin + user.work_hours + rng.gauss(0, 0.3)
        actions = poisson(rng, user.activity)
        morning_share = (lunch - begin) / max(0.1, finish - begin - 0.75)
        morning = round(actions * morning_share)
        first = self.factory.session(user, place, at_local(day, begin, tz))
        out.append(
            _Segment(
                at_local(day, begin, tz), at_local(day, lunch, tz), first, True, False, morning, mix
            )
        )
        fresh = rng.random() < 0.45
        second = (
            self.factory.session(user, place, at_local(day, lunch + 0.75, tz)) if fresh else first
        )
        out.append(
            _Segment(
                at_local(day, lunch + 0.75, tz),
                at_local(day, finish, tz),
                second,
                fresh,
                rng.random() < 0.6,
                actions - morning,
                mix,
            )
        )
        if user.shift is Shift.DAY and rng.random() < 0.2:
            hour = rng.uniform(lunch + 1, max(lunch + 1.1, finish - 0.5))
            out.append(
                self._segment(user, user.phone, at_local(day, hour, tz), 0.15, LIGHT_MIX, 0, 2)
            )
        if rng.random() < user.evening_rate:
            at = at_local(day, rng.uniform(20.0, 21.5), tz)
            place = user.phone if rng.random() < 0.5 else user.home
            out.append(self._segment(user, place, at, rng.uniform(0.2, 0.6), LIGHT_MIX, 1, 3))
        return out

    def _segment(
        self,
        user: User,
        place: Place,
        start: datetime,
        hours: float,
        mix: dict[str, float],
        low: int,
        high: int,
    ) -> _Segment:
        end = start + timedelta(hours=hours)
        count = self.rng.randint(low, high)
        if place.kind == "phone":
            # The phone app keeps its session; it signs in again once a week or so.
            week = start.isocalendar()[:2]
            fresh = self._phone_week.get(user.id) != week
            if fresh:
                self._phone_week[user.id] = week
                self._phone[user.id] = self.factory.session(user, place, start)
            session = self._phone.get(user.id) or self.factory.session(user, place, start)
            return _Segment(start, end, session, fresh, False, count, mix)
        session = self.factory.session(user, place, start)
        return _Segment(start, end, session, True, self.rng.random() < 0.3, count, mix)

    def _sign_in(self, user: User, at: datetime, session: Session) -> list[SimEvent]:
        out = []
        roll = self.rng.random()
        typos = 2 if roll < 0.005 else 1 if roll < 0.035 else 0
        for i in range(typos, 0, -1):
            when = at - timedelta(seconds=self.rng.uniform(8, 30) * i)
            out.append(
                self.factory.make(
                    user,
                    "sign_in_failed",
                    when,
                    {"type": "session", "id": "-"},
                    session,
                    outcome="failure",
                    metadata={"reason": "wrong_password"},
                )
            )
        out.append(self.factory.make(user, "sign_in", at, _session_resource(session), session))
        return out

    # Helpers ------------------------------------------------------------------------------

    def _ev(
        self,
        user: User,
        action: str,
        at: datetime,
        session: Session,
        kind: str,
        entity: str,
        name: Any = None,
        changes: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> SimEvent:
        resource: dict[str, Any] = {"type": kind, "id": entity}
        if name:
            resource["name"] = str(name)
        return self.factory.make(user, action, at, resource, session, changes=changes, **extra)

    def _cascade(
        self,
        parent: SimEvent,
        user: User,
        session: Session,
        children: Iterable[tuple[str, str, str, Any, list[dict[str, Any]]]],
    ) -> list[SimEvent]:
        """``parent`` and its consequences: (action, kind, id, name, changes) each."""
        correlation = parent.fields["correlation_id"]
        out = [parent]
        for i, (action, kind, entity, name, changes) in enumerate(children, 1):
            out.append(
                self._ev(
                    user,
                    action,
                    parent.at + CASCADE_STEP * i,
                    session,
                    kind,
                    entity,
                    name,
                    changes,
                    correlation_id=correlation,
                    parent=parent.fields["event_id"],
                )
            )
        return out

    def _other_user(self, user: User) -> str:
        return self.rng.choice([u for u in self._others if u != user.id] or [user.id])

    # Members ------------------------------------------------------------------------------

    def _do_track_time(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project", lambda p: p["status"] == "active")
        if found is None:
            return []
        pid, project = found
        minutes = self.rng.choice([15, 30, 45, 60, 90, 120, 180])
        eid = self.reg.add_time_entry(pid, user.id, minutes)
        self.reg.created(user.id, "time_entry", eid)
        entry = self.reg.time_entries[eid]
        return [
            self._ev(
                user,
                "create",
                at,
                s,
                "time_entry",
                eid,
                entry["description"],
                [
                    change("project_name", None, project["name"]),
                    change("duration_minutes", None, minutes),
                    change("description", None, entry["description"]),
                    change("billable", None, entry["billable"]),
                ],
            )
        ]

    def _do_edit_time(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.own(user.id, "time_entry") or self.reg.pick("time_entry")
        if found is None:
            return []
        eid, entry = found
        if self.rng.random() < 0.6:
            old = entry["duration_minutes"]
            new = max(5, old + self.rng.choice([-30, -15, 15, 30, 45]))
            entry["duration_minutes"] = new
            changes = [change("duration_minutes", old, new)]
        else:
            old, new = entry["description"], self.reg.task_title()
            entry["description"] = new
            changes = [change("description", old, new)]
        return [self._ev(user, "update", at, s, "time_entry", eid, entry["description"], changes)]

    def _do_task_update(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("task")
        if found is None:
            return []
        tid, task = found
        if self.rng.random() < 0.5:
            old, new = task["title"], self.reg.task_title()
            task["title"] = new
            changes = [change("title", old, new)]
        else:
            old = task["due_date"]
            new = (at + timedelta(days=self.rng.randrange(1, 30))).date().isoformat()
            task["due_date"] = new
            changes = [change("due_date", old, new)]
        return [self._ev(user, "update", at, s, "task", tid, task["title"], changes)]

    def _do_task_status(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("task", lambda t: t["status"] in TASK_STATUSES[:-1])
        if found is None:
            return []
        tid, task = found
        old = task["status"]
        new = TASK_STATUSES[TASK_STATUSES.index(old) + 1]
        task["status"] = new
        return [
            self._ev(
                user,
                "status_change",
                at,
                s,
                "task",
                tid,
                task["title"],
                [change("status", old, new)],
            )
        ]

    def _do_task_create(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project", lambda p: p["status"] == "active")
        if found is None:
            return []
        pid, project = found
        tid = self.reg.add_task(pid, user.id)
        self.reg.created(user.id, "task", tid)
        task = self.reg.tasks[tid]
        return [
            self._ev(
                user,
                "create",
                at,
                s,
                "task",
                tid,
                task["title"],
                [
                    change("title", None, task["title"]),
                    change("project_name", None, project["name"]),
                    change("assignee", None, user.id),
                ],
            )
        ]

    def _do_task_assign(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("task")
        if found is None:
            return []
        tid, task = found
        old, new = task["assignee"], self._other_user(user)
        task["assignee"] = new
        return [
            self._ev(
                user, "assign", at, s, "task", tid, task["title"], [change("assignee", old, new)]
            )
        ]

    def _do_comment(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("task")
        if found is None:
            return []
        tid, task = found
        meta = {"comment_chars": self.rng.randrange(12, 600)}
        return [self._ev(user, "comment", at, s, "task", tid, task["title"], metadata=meta)]

    def _do_view_doc(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("document", lambda d: not d.get("archived"))
        if found is None:
            return []
        did, doc = found
        return [self._ev(user, "access", at, s, "document", did, doc["title"])]

    def _do_view_project(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project")
        if found is None:
            return []
        pid, project = found
        return [self._ev(user, "access", at, s, "project", pid, project["name"])]

    def _do_view_client(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("client")
        if found is None:
            return []
        cid, client = found
        return [self._ev(user, "access", at, s, "client", cid, client["name"])]

    def _do_edit_doc(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("document", lambda d: not d.get("archived"))
        if found is None:
            return []
        did, doc = found
        old, new = doc["title"], self.reg.document_title()
        doc["title"] = new
        return [self._ev(user, "update", at, s, "document", did, new, [change("title", old, new)])]

    def _do_create_doc(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project", lambda p: p["status"] == "active")
        did = self.reg.add_document(found[0] if found else None)
        self.reg.created(user.id, "document", did)
        doc = self.reg.documents[did]
        return [
            self._ev(
                user,
                "create",
                at,
                s,
                "document",
                did,
                doc["title"],
                [
                    change("title", None, doc["title"]),
                    change("visibility", None, doc["visibility"]),
                ],
            )
        ]

    def _do_tag_task(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        task_found, tag_found = self.reg.pick("task"), self.reg.pick("tag")
        if task_found is None or tag_found is None:
            return []
        (tid, task), (_, tag) = task_found, tag_found
        if tag["name"] in task["tags"]:
            return []
        old = list(task["tags"])
        task["tags"] = [*old, tag["name"]]
        return [
            self._ev(
                user,
                "update",
                at,
                s,
                "task",
                tid,
                task["title"],
                [change("tags", old, task["tags"])],
            )
        ]

    def _do_contact_update(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("contact")
        if found is None:
            return []
        cid, contact = found
        old = contact["email"]
        new = old.replace("@", f".{self.rng.randrange(2, 9)}@", 1)
        contact["email"] = new
        return [
            self._ev(
                user, "update", at, s, "contact", cid, contact["name"], [change("email", old, new)]
            )
        ]

    def _do_contact_create(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("client")
        if found is None:
            return []
        cid = self.reg.add_contact(found[0])
        contact = self.reg.contacts[cid]
        return [
            self._ev(
                user,
                "create",
                at,
                s,
                "contact",
                cid,
                contact["name"],
                [change("name", None, contact["name"]), change("email", None, contact["email"])],
            )
        ]

    def _do_export_timesheet(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        week = at.isocalendar()
        ident = f"timesheet:{user.id}:{week.year}-W{week.week:02d}"
        meta = {
            "format": self.rng.choice(["csv", "xlsx", "pdf"]),
            "rows": self.rng.randrange(5, 60),
        }
        return [self._ev(user, "export", at, s, "time_entry", ident, "Timesheet", metadata=meta)]

    def _do_delete_own(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        kind = self.rng.choice(["time_entry", "time_entry", "task", "document"])
        found = self.reg.own(user.id, kind)
        if found is None:
            return []
        entity, values = found
        del self.reg.table(kind)[entity]
        label = values.get("description") or values.get("title")
        return [self._ev(user, "delete", at, s, kind, entity, label, [change("name", label, None)])]

    # Managers ------------------------------------------------------------------------------

    def _do_project_update(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project", lambda p: p["status"] == "active")
        if found is None:
            return []
        pid, project = found
        old = project["billable"]
        project["billable"] = not old
        return [
            self._ev(
                user,
                "update",
                at,
                s,
                "project",
                pid,
                project["name"],
                [change("billable", old, not old)],
            )
        ]

    def _do_project_create(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        pid = self.reg.add_project()
        project = self.reg.projects[pid]
        client = self.reg.clients.get(project["client"], {}).get("name")
        return [
            self._ev(
                user,
                "create",
                at,
                s,
                "project",
                pid,
                project["name"],
                [change("name", None, project["name"]), change("client_name", None, client)],
            )
        ]

    def _do_project_rename(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project", lambda p: p["status"] == "active")
        if found is None:
            return []
        pid, project = found
        old, new = project["name"], self.reg.project_name()
        if old == new:
            return []
        project["name"] = new
        parent = self._ev(
            user,
            "update",
            at,
            s,
            "project",
            pid,
            new,
            [change("name", old, new)],
            correlation_id=self.factory.correlation(),
        )
        children = []
        for eid, entry in list(self.reg.time_entries.items()):
            if entry["project"] == pid:
                entry["project_name"] = new
                children.append(
                    (
                        "update",
                        "time_entry",
                        eid,
                        entry["description"],
                        [change("project_name", old, new)],
                    )
                )
        return self._cascade(parent, user, s, children[:40])

    def _do_project_archive(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project", lambda p: p["status"] == "active")
        if (
            found is None
            or len([p for p in self.reg.projects.values() if p["status"] == "active"]) < 6
        ):
            return []
        pid, project = found
        project["status"] = "archived"
        parent = self._ev(
            user,
            "status_change",
            at,
            s,
            "project",
            pid,
            project["name"],
            [change("status", "active", "archived")],
            correlation_id=self.factory.correlation(),
        )
        children = []
        for tid, task in self.reg.tasks.items():
            if task["project"] == pid and task["status"] != "done":
                children.append(
                    (
                        "status_change",
                        "task",
                        tid,
                        task["title"],
                        [change("status", task["status"], "archived")],
                    )
                )
                task["status"] = "archived"
        return self._cascade(parent, user, s, children[:30])

    def _do_project_delete(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        """Only small, recent projects are deleted (big ones are archived)."""
        candidates = [
            pid
            for pid, p in self.reg.projects.items()
            if p["status"] == "active"
            and sum(t["project"] == pid for t in self.reg.tasks.values()) <= 6
        ]
        if not candidates or len(self.reg.projects) < 8:
            return []
        pid = self.rng.choice(candidates)
        project = self.reg.projects.pop(pid)
        parent = self._ev(
            user,
            "delete",
            at,
            s,
            "project",
            pid,
            project["name"],
            [change("name", project["name"], None)],
            correlation_id=self.factory.correlation(),
        )
        children: list[tuple[str, str, str, Any, list[dict[str, Any]]]] = []
        for tid in [t for t, task in self.reg.tasks.items() if task["project"] == pid]:
            task = self.reg.tasks.pop(tid)
            children.append(
                ("delete", "task", tid, task["title"], [change("title", task["title"], None)])
            )
        for eid, entry in self.reg.time_entries.items():
            if entry["project"] == pid:
                entry["project"] = None
                children.append(
                    (
                        "update",
                        "time_entry",
                        eid,
                        entry["description"],
                        [change("project_name", project["name"], None)],
                    )
                )
        return self._cascade(parent, user, s, children[:30])

    def _do_client_rename(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("client")
        if found is None:
            return []
        cid, client = found
        old = client["name"]
        new = old.rsplit(" ", 1)[0] + " " + self.rng.choice(["Group", "Holding", "AG", "LLC"])
        if old == new:
            return []
        client["name"] = new
        parent = self._ev(
            user,
            "update",
            at,
            s,
            "client",
            cid,
            new,
            [change("name", old, new)],
            correlation_id=self.factory.correlation(),
        )
        children = [
            ("update", "project", pid, p["name"], [change("client_name", old, new)])
            for pid, p in self.reg.projects.items()
            if p["client"] == cid
        ]
        return self._cascade(parent, user, s, children)

    def _do_client_update(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("client")
        if found is None:
            return []
        cid, client = found
        old = client["billing_email"]
        new = f"accounts{self.rng.randrange(1, 9)}@{cid}.example"
        client["billing_email"] = new
        return [
            self._ev(
                user,
                "update",
                at,
                s,
                "client",
                cid,
                client["name"],
                [change("billing_email", old, new)],
            )
        ]

    def _do_export_report(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("project")
        if found is None:
            return []
        pid, project = found
        meta = {"format": self.rng.choice(["pdf", "csv"]), "report": "project_summary"}
        return [self._ev(user, "export", at, s, "project", pid, project["name"], metadata=meta)]

    # Finance -------------------------------------------------------------------------------

    def _do_invoice_create(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("client")
        if found is None:
            return []
        iid = self.reg.add_invoice(found[0])
        inv = self.reg.invoices[iid]
        self.reg.created(user.id, "invoice", iid)
        return [
            self._ev(
                user,
                "create",
                at,
                s,
                "invoice",
                iid,
                inv["number"],
                [
                    change("amount", None, inv["amount"]),
                    change("client_name", None, found[1]["name"]),
                ],
            )
        ]

    def _do_invoice_update(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("invoice", lambda i: i["status"] == "draft")
        if found is None:
            return []
        iid, inv = found
        old = inv["amount"]
        new = round(old * self.rng.uniform(0.8, 1.2), 2)
        inv["amount"] = new
        return [
            self._ev(
                user, "update", at, s, "invoice", iid, inv["number"], [change("amount", old, new)]
            )
        ]

    def _do_invoice_status(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("invoice", lambda i: i["status"] != "paid")
        if found is None:
            return []
        iid, inv = found
        old = inv["status"]
        new = INVOICE_FLOW[INVOICE_FLOW.index(old) + 1]
        inv["status"] = new
        return [
            self._ev(
                user,
                "status_change",
                at,
                s,
                "invoice",
                iid,
                inv["number"],
                [change("status", old, new)],
            )
        ]

    def _do_invoice_export(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("invoice")
        if found is None:
            return []
        iid, inv = found
        return [
            self._ev(
                user, "export", at, s, "invoice", iid, inv["number"], metadata={"format": "pdf"}
            )
        ]

    # Admins --------------------------------------------------------------------------------

    def _do_invite(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        mid = self.reg.new_id("mem")
        email = f"new.hire{self.reg.counters['mem']}@{user.tenant_id}.example"
        self.reg.memberships[mid] = {"role": "member", "user": email, "invited": True}
        return [
            self._ev(
                user, "invite", at, s, "membership", mid, email, [change("role", None, "member")]
            )
        ]

    def _do_role_change(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("membership", lambda m: m["role"] in PLAIN_ROLES)
        if found is None:
            return []
        mid, membership = found
        old = membership["role"]
        new = self.rng.choice([r for r in PLAIN_ROLES if r != old])
        membership["role"] = new
        return [
            self._ev(
                user,
                "role_change",
                at,
                s,
                "membership",
                mid,
                membership["user"],
                [change("role", old, new)],
            )
        ]

    def _do_settings_change(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        key = self.rng.choice(list(self.reg.settings))
        old = self.reg.settings[key]
        if isinstance(old, bool):
            new: Any = not old
        elif key == "time_rounding_minutes":
            new = self.rng.choice([v for v in (1, 5, 6, 10, 15, 30) if v != old])
        elif key == "week_start":
            new = "sunday" if old == "monday" else "monday"
        else:
            new = self.rng.choice([c for c in ("EUR", "USD", "GBP", "JPY") if c != old])
        self.reg.settings[key] = new
        return [
            self._ev(
                user,
                "settings_change",
                at,
                s,
                "settings",
                "workspace",
                "Workspace",
                [change(key, old, new)],
            )
        ]

    def _do_integration(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        name = self.rng.choice(INTEGRATIONS)
        connected = self.reg.integrations.get(name) == "connected"
        action = "integration_disconnect" if connected else "integration_connect"
        new = "disconnected" if connected else "connected"
        old = self.reg.integrations.get(name)
        self.reg.integrations[name] = new
        return [
            self._ev(
                user,
                action,
                at,
                s,
                "integration",
                name,
                name.replace("_", " ").title(),
                [change("status", old, new)],
            )
        ]

    def _do_share_doc(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        found = self.reg.pick("document", lambda d: not d.get("archived"))
        if found is None:
            return []
        did, doc = found
        old = doc["visibility"]
        new = self.rng.choice([v for v in ("private", "team", "client", "link") if v != old])
        doc["visibility"] = new
        return [
            self._ev(
                user,
                "permission_change",
                at,
                s,
                "document",
                did,
                doc["title"],
                [change("visibility", old, new)],
            )
        ]

    def _do_tag_delete(self, user: User, at: datetime, s: Session) -> list[SimEvent]:
        if len(self.reg.tags) < 5:
            return []
        found = self.reg.pick("tag")
        if found is None:
            return []
        gid, tag = found
        del self.reg.tags[gid]
        parent = self._ev(
            user,
            "delete",
            at,
            s,
            "tag",
            gid,
            tag["name"],
            [change("name", tag["name"], None)],
            correlation_id=self.factory.correlation(),
        )
        children = []
        for tid, task in self.reg.tasks.items():
            if tag["name"] in task["tags"]:
                old = list(task["tags"])
                task["tags"] = [t for t in old if t != tag["name"]]
                children.append(
                    ("update", "task", tid, task["title"], [change("tags", old, task["tags"])])
                )
        return self._cascade(parent, user, s, children[:30])


def _session_resource(session: Session) -> dict[str, Any]:
    return {"type": "session", "id": session.id}
