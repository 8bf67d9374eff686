"""One tenant's entities as the simulated product sees them, so changes have real old values.

A time-tracking and project-management product: clients, projects, tasks, time entries,
tags, documents, contacts, invoices, memberships, settings and integrations. The registry
starts with what the tenant already had before the simulation (``seed``), then follows
every simulated change. Entities that a scenario will delete or export are taken out
first (``take``), so background work never touches them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ADJECTIVES = ["Blue", "Quiet", "Rapid", "Northern", "Bright", "Silver", "Open", "Urban", "Green"]
NOUNS = ["Harbor", "Falcon", "Summit", "Atlas", "Cedar", "Orbit", "Beacon", "Meadow", "Delta"]
COMPANIES = [
    "Initrode", "Massive Dynamic", "Pied Piper", "Dunder Mifflin", "Oscorp", "Aperture",
    "Gringotts", "Monarch", "Nakatomi", "Prestige", "Sterling Cooper", "Virtucon",
]  # fmt: skip
TASK_VERBS = ["Draft", "Review", "Fix", "Prepare", "Update", "Plan", "Test", "Call", "Design"]
TASK_THINGS = [
    "budget", "landing page", "contract", "sprint board", "release notes", "onboarding guide",
    "quarterly report", "invoice run", "client workshop",
]  # fmt: skip
DOC_KINDS = ["Proposal", "Meeting notes", "Spec", "Statement of work", "Retro", "Brief"]
TAG_NAMES = ["urgent", "billable", "internal", "blocked", "design", "backend", "q4", "research",
             "follow-up", "waiting"]  # fmt: skip
COLORS = ["#e5484d", "#30a46c", "#0090ff", "#f76b15", "#8e4ec6", "#ffc53d"]
TASK_STATUSES = ["todo", "in_progress", "in_review", "done"]
INVOICE_FLOW = ["draft", "sent", "paid"]
SETTINGS: dict[str, Any] = {
    "week_start": "monday",
    "time_rounding_minutes": 15,
    "default_billable": True,
    "two_factor_required": False,
    "timesheet_approval": False,
    "currency": "EUR",
}
INTEGRATIONS = ["slack", "google_calendar", "jira", "github", "quickbooks", "zapier"]


@dataclass
class Registry:
    tenant_id: str
    rng: random.Random
    counters: dict[str, int] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    time_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: dict(SETTINGS))
    integrations: dict[str, str] = field(default_factory=dict)
    recent: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """User id -> (kind, id) of what they created lately: what they edit or delete again."""

    def created(self, user: str, kind: str, entity: str) -> None:
        mine = self.recent.setdefault(user, [])
        mine.append((kind, entity))
        del mine[:-30]

    def own(self, user: str, kind: str) -> tuple[str, dict[str, Any]] | None:
        """One of ``user``'s recent ``kind`` entities that still exists."""
        mine = [e for k, e in self.recent.get(user, []) if k == kind and e in self.table(kind)]
        if not mine:
            return None
        entity = self.rng.choice(mine)
        return entity, self.table(kind)[entity]

    def new_id(self, prefix: str) -> str:
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return f"{prefix}_{n:05d}"

    def table(self, kind: str) -> dict[str, dict[str, Any]]:
        tables: dict[str, dict[str, dict[str, Any]]] = {
            "client": self.clients,
            "project": self.projects,
            "task": self.tasks,
            "time_entry": self.time_entries,
            "tag": self.tags,
            "document": self.documents,
            "contact": self.contacts,
            "invoice": self.invoices,
            "membership": self.memberships,
        }
        return tables[kind]

    def pick(self, kind: str, where: Any = None) -> tuple[str, dict[str, Any]] | None:
        table = self.table(kind)
        if not table:
            return None
        keys = list(table)
        for _ in range(8):
            key = keys[self.rng.randrange(len(keys))]
            if where is None or where(table[key]):
                return key, table[key]
        return None

    def take(self, kind: str, count: int, where: Any = None) -> list[tuple[str, dict[str, Any]]]:
        """Remove up to ``count`` entities for a scenario; background never sees them again."""
        table = self.table(kind)
        chosen = [k for k, v in table.items() if where is None or where(v)]
        self.rng.shuffle(chosen)
        return [(k, table.pop(k)) for k in chosen[:count]]

    # Names -----------------------------------------------------------------------------

    def project_name(self) -> str:
        return f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)}"

    def task_title(self) -> str:
        return f"{self.rng.choice(TASK_VERBS)} {self.rng.choice(TASK_THINGS)}"

    def document_title(self) -> str:
        return f"{self.rng.choice(DOC_KINDS)}: {self.rng.choice(NOUNS)} {self.rng.randrange(1, 40)}"

    # Creation ----------------------------------------------------------------------------

    def add_client(self) -> str:
        cid = self.new_id("cli")
        name = f"{self.rng.choice(COMPANIES)} {self.rng.choice(['GmbH', 'Inc.', 'Ltd', 'SA'])}"
        self.clients[cid] = {"name": name, "billing_email": f"billing@{cid}.example"}
        return cid

    def add_project(self, client: str | None = None) -> str:
        pid = self.new_id("prj")
        client = client or (self.pick("client") or (self.add_client(), {}))[0]
        self.projects[pid] = {
            "name": self.project_name(),
            "client": client,
            "status": "active",
            "billable": self.rng.random() < 0.7,
        }
        return pid

    def add_task(self, project: str, assignee: str) -> str:
        tid = self.new_id("tsk")
        self.tasks[tid] = {
            "title": self.task_title(),
            "status": "todo",
            "assignee": assignee,
            "project": project,
            "tags": [],
            "due_date": None,
        }
        return tid

    def add_time_entry(self, project: str, user: str, minutes: int) -> str:
        eid = self.new_id("te")
        self.time_entries[eid] = {
            "project": project,
            "project_name": self.projects.get(project, {}).get("name"),
            "user": user,
            "duration_minutes": minutes,
            "description": self.task_title(),
            "billable": self.projects.get(project, {}).get("billable", True),
        }
        return eid

    def add_document(self, project: str | None) -> str:
        did = self.new_id("doc")
        self.documents[did] = {
            "title": self.document_title(),
            "visibility": self.rng.choice(["team", "team", "private", "client"]),
            "project": project,
        }
        return did

    def add_contact(self, client: str) -> str:
        cid = self.new_id("con")
        first = self.rng.choice(["Sam", "Alex", "Kim", "Robin", "Jo", "Chris", "Noa", "Mika"])
        self.contacts[cid] = {
            "name": f"{first} {self.rng.choice(NOUNS)}",
            "email": f"{first.lower()}@{client}.example",
            "client": client,
        }
        return cid

    def add_invoice(self, client: str) -> str:
        iid = self.new_id("inv")
        self.invoices[iid] = {
            "number": f"INV-{self.rng.randrange(2024, 2027)}-{len(self.invoices) + 100:04d}",
            "client": client,
            "amount": round(self.rng.uniform(300, 25_000), 2),
            "status": "draft",
            "due_date": None,
        }
        return iid

    def add_tag(self) -> str:
        tid = self.new_id("tag")
        self.tags[tid] = {"name": self.rng.choice(TAG_NAMES), "color": self.rng.choice(COLORS)}
        return tid


def seeded(tenant_id: str, members: dict[str, str], seed: int) -> Registry:
    """The tenant's data before the simulation starts: the same for the same seed.

    ``members`` maps user ids to roles. Besides current work, each tenant has a backlog of
    old time entries and documents from archived projects: what planned clean-ups remove.
    """
    reg = Registry(tenant_id, random.Random(f"{seed}:registry:{tenant_id}"))
    users = list(members)
    for uid, role in members.items():
        reg.memberships[uid] = {"role": role, "user": uid}
    for _ in range(8):
        reg.add_client()
    for _ in range(10):
        reg.add_project()
    for _ in range(6):
        pid = reg.add_project()
        reg.projects[pid]["status"] = "archived"
    for _ in range(6):
        reg.add_tag()
    active = [p for p, v in reg.projects.items() if v["status"] == "active"]
    archived = [p for p, v in reg.projects.items() if v["status"] == "archived"]
    for _ in range(12 * len(users)):
        reg.add_task(reg.rng.choice(active), reg.rng.choice(users))
    for _ in range(20 * len(users)):
        reg.add_time_entry(
            reg.rng.choice(active), reg.rng.choice(users), reg.rng.randrange(15, 240)
        )
    for _ in range(600):
        eid = reg.add_time_entry(
            reg.rng.choice(archived), reg.rng.choice(users), reg.rng.randrange(15, 240)
        )
        reg.time_entries[eid]["archived"] = True
    for _ in range(4 * len(users)):
        reg.add_document(reg.rng.choice(active))
    for _ in range(200):
        did = reg.add_document(reg.rng.choice(archived))
        reg.documents[did]["archived"] = True
    for cid in list(reg.clients):
        for _ in range(3):
            reg.add_contact(cid)
    for _ in range(40):
        iid = reg.add_invoice(reg.rng.choice(list(reg.clients)))
        reg.invoices[iid]["status"] = reg.rng.choice(INVOICE_FLOW)
    for name in INTEGRATIONS[:3]:
        reg.integrations[name] = "connected"
    return reg
