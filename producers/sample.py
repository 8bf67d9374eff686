"""Plausible sample traffic for the demo: a few tenants, their people, their daily work."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

TENANTS = {
    "acme": ("Europe/Berlin", "DE", "Berlin", 52.52, 13.40),
    "globex": ("America/New_York", "US", "New York", 40.71, -74.01),
    "initech": ("Asia/Tokyo", "JP", "Tokyo", 35.68, 139.69),
}
FIRST = ["Ada", "Linus", "Grace", "Ken", "Barbara", "Dennis", "Margaret", "Alan", "Radia", "Tim"]
LAST = ["Lovelace", "Torvalds", "Hopper", "Thompson", "Liskov", "Ritchie", "Hamilton", "Kay"]
RESOURCES = {
    "task": ["title", "status", "assignee", "due_date"],
    "project": ["name", "client", "billable"],
    "time_entry": ["duration_minutes", "description", "project"],
    "client": ["name", "billing_email"],
    "invoice": ["amount", "status", "due_date"],
    "document": ["title", "visibility"],
    "tag": ["name", "color"],
}
AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
WEIGHTS = {
    "update": 30, "create": 20, "access": 20, "comment": 6, "status_change": 6, "assign": 5,
    "delete": 4, "sign_in": 5, "sign_out": 2, "sign_in_failed": 1, "export": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Person:
    tenant: str
    id: str
    name: str
    email: str
    timezone: str
    ip: str


def people(rng: random.Random, per_tenant: int = 6) -> list[Person]:
    out = []
    for t_index, (tenant, (tz, *_)) in enumerate(TENANTS.items()):
        for i in range(per_tenant):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            out.append(
                Person(
                    tenant=tenant,
                    id=f"usr_{tenant[:3]}{i:03d}",
                    name=f"{first} {last}",
                    email=f"{first.lower()}.{last.lower()}@{tenant}.example",
                    timezone=tz,
                    ip=f"203.0.{113 if t_index else 112}.{10 + i + 20 * t_index}",
                )
            )
    return out


def _value(rng: random.Random, field: str) -> Any:
    if field in ("duration_minutes", "amount"):
        return rng.randrange(15, 900)
    if field == "status":
        return rng.choice(["open", "in_progress", "done", "draft", "sent", "paid"])
    if field == "billable":
        return rng.random() < 0.5
    if field == "due_date":
        return (datetime(2026, 12, 1) + timedelta(days=rng.randrange(60))).date().isoformat()
    return f"{field.replace('_', ' ').title()} {rng.randrange(1000)}"


def events(
    count: int, seed: int = 7, run_id: str = "", end: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` event field sets for ``AuditProducer.emit(**fields)``, over the 8 hours
    before ``end`` (default: now)."""
    rng = random.Random(seed)
    staff = people(rng)
    verbs, weights = zip(*WEIGHTS.items(), strict=True)
    start = (end or datetime.now(UTC)) - timedelta(hours=8)
    step = timedelta(hours=8) / max(count, 1)
    for n in range(count):
        person = rng.choice(staff)
        action = rng.choices(verbs, weights)[0]
        _, country, city, lat, lon = TENANTS[person.tenant]
        fields: dict[str, Any] = {
            "occurred_at": start + step * n,
            "tenant_id": person.tenant,
            "actor": {"id": person.id, "type": "member", "display_name": person.name,
                      "email": person.email, "timezone": person.timezone},
            "action": action,
            "ip": person.ip,
            "user_agent": rng.choice(AGENTS),
            "channel": "web",
            "session_id": f"sess_{person.id}_{n // 40}",
            "metadata": {"demo_run": run_id} if run_id else {},
        }  # fmt: skip
        if action.startswith("sign"):
            fields["resource"] = {"type": "session", "id": fields["session_id"]}
            fields["outcome"] = "failure" if action == "sign_in_failed" else "success"
            fields["location"] = {"country": country, "city": city,
                                  "latitude": lat, "longitude": lon}  # fmt: skip
        else:
            rtype = rng.choice(list(RESOURCES))
            rid = f"{rtype[:3]}_{rng.randrange(400):04d}"
            fields["resource"] = {"type": rtype, "id": rid, "name": _value(rng, "name")}
            if action in ("update", "status_change", "assign"):
                changed = rng.sample(RESOURCES[rtype], k=min(2, len(RESOURCES[rtype])))
                fields["changes"] = [
                    {"field": f, "old": _value(rng, f), "new": _value(rng, f)} for f in changed
                ]
        yield fields


INVALID: list[bytes] = [
    b"{not json",
    b'{"tenant_id": "acme", "action": "delete", "resource": {"type": "task", "id": "1"}, '
    b'"occurred_at": "2026-11-01T10:00:00Z"}',
    b'{"tenant_id": "acme", "actor": {"id": "u1"}, "action": "teleport", '
    b'"resource": {"type": "task", "id": "1"}, "occurred_at": "2026-11-01T10:00:00Z"}',
    b'{"tenant_id": "acme", "actor": {"id": "u1"}, "action": "update", "resource": '
    b'{"type": "task", "id": "1"}, "occurred_at": "2026-11-01T10:00:00Z", "metadata": {"blob": "'
    + b"x" * 70_000
    + b'"}}',
]
"""Bad input the demo sends on purpose: bad JSON, no actor, unknown verb, oversized."""
