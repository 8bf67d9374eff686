"""The review checklist: the default sections every review covers, and a tenant's additions.

The default sections (``DEFAULT``) each have their own query in ``report.py``. A tenant adds
sections as filters on its events (``--check "NAME=action:a|b;type:t;outcome:failure"``):
every event in the period matching all the given parts is a finding of that section.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from auditstream.schemas.actions import canonical_action

DEFAULT: tuple[tuple[str, str], ...] = (
    ("unexpected_access", "Unexpected access: sign-ins from new places or at odd hours"),
    ("failed_actions", "Failed and denied actions"),
    ("mass_deletions_exports", "Mass deletions and exports"),
    ("access_changes", "Settings, role and permission changes, and invitations"),
    ("new_integrations", "Integrations connected or disconnected"),
    ("alerts", "Security alerts raised, and their state"),
    ("timeline_gaps", "Gaps in the timeline"),
    ("scope_changes", "Changes to retention or recording scope"),
)
"""(key, title) of each default section, in report order."""

ODD_HOURS = (22, 6)
"""A sign-in at or after 22:00 or before 06:00, in the actor's own zone (UTC if unknown)."""
MASS_THRESHOLD = 20
"""Deletions by one actor within one hour that make a mass deletion."""


@dataclass(frozen=True)
class Check:
    """A tenant's own section: events matching every non-empty part."""

    name: str
    actions: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return "custom:" + self.name


def parse_check(text: str) -> Check:
    """``NAME=action:a|b;type:t|u;outcome:failure``."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: a check is NAME=action:a|b;type:t;outcome:failure")
    parts: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        kind, sep, values = part.partition(":")
        if not sep or kind not in ("action", "type", "outcome"):
            raise ValueError(f"{part!r}: use action:..., type:... or outcome:...")
        items = tuple(v.strip() for v in values.split("|") if v.strip())
        if kind == "action":
            items = tuple(str(canonical_action(v) or v) for v in items)
        parts[kind] = items
    if not parts:
        raise ValueError(f"{text!r} names no filter")
    return Check(
        name.strip(), parts.get("action", ()), parts.get("type", ()), parts.get("outcome", ())
    )


def checks_to_json(checks: tuple[Check, ...]) -> str:
    return orjson.dumps(
        [
            {
                "name": c.name,
                "actions": list(c.actions),
                "resource_types": list(c.resource_types),
                "outcomes": list(c.outcomes),
            }
            for c in checks
        ]
    ).decode()


def checks_from_json(text: str) -> tuple[Check, ...]:
    items = orjson.loads(text or "[]")
    return tuple(
        Check(
            str(d["name"]),
            tuple(d.get("actions") or ()),
            tuple(d.get("resource_types") or ()),
            tuple(d.get("outcomes") or ()),
        )
        for d in items
    )
