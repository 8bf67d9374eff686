"""The real-format samples (``sources/samples/``) through their adapter and the detectors:
what each sample should raise, next to what it raised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditstream.detectors.base import Scope
from auditstream.detectors.engine import DetectionEngine
from auditstream.schemas.event import AuditEvent
from auditstream.sources import FORMATS, Options

SAMPLES = Path(__file__).resolve().parent.parent / "sources" / "samples"
NOW = datetime(2026, 3, 10, tzinfo=UTC)
"""The samples are from March 2026 (syslog lines have no year)."""

EXPECTED: dict[str, tuple[str, frozenset[tuple[str, str]]]] = {
    "sshd": (
        "auth.log",
        frozenset(
            {
                ("account_sign_in_failures", "root"),  # 26 failed root logins in 59 s
                ("source_sign_in_failures", "203.0.113.50"),
                ("source_sign_in_failures", "198.51.100.23"),  # 18 failures, six user names
            }
        ),
    ),
    "okta": ("okta.json", frozenset()),
    "github": ("github.jsonl", frozenset({("privilege_escalation", "octocat")})),
    "google-login": ("google-login.json", frozenset()),
    "cloudtrail": ("cloudtrail.json", frozenset()),
}


@dataclass(frozen=True)
class SampleResult:
    format: str
    events: int
    skipped: int
    expected: frozenset[tuple[str, str]]
    raised: frozenset[tuple[str, str]]

    @property
    def missed(self) -> frozenset[tuple[str, str]]:
        return self.expected - self.raised

    @property
    def unexpected(self) -> frozenset[tuple[str, str]]:
        return self.raised - self.expected

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "events": self.events,
            "skipped": self.skipped,
            "expected": sorted(map(list, self.expected)),
            "raised": sorted(map(list, self.raised)),
        }


def run(engine: DetectionEngine, tenant: str = "sample") -> list[SampleResult]:
    out = []
    for fmt, (name, expected) in EXPECTED.items():
        parsed = FORMATS[fmt]((SAMPLES / name).read_text(), Options(tenant, now=NOW))
        events = sorted(
            (AuditEvent.model_validate(e) for e in parsed.events), key=lambda e: e.occurred_at
        )
        states: dict[tuple[Scope, str], dict[str, Any]] = {}
        shared: dict[Scope, dict[str, Any]] = {}
        raised: set[tuple[str, str]] = set()
        for event in events:
            for scope in Scope:
                subject = event.actor.id if scope is Scope.ACTOR else event.ip
                if subject is None or not engine.has(scope) or not engine.wants(event, scope):
                    continue
                state = states.setdefault((scope, subject), {})
                for alert in engine.process(event, state, scope, shared.setdefault(scope, {})):
                    raised.add((alert.rule, alert.subject))
        out.append(
            SampleResult(
                fmt, len(events), sum(parsed.skipped.values()), expected, frozenset(raised)
            )
        )
    return out
