"""Failed sign-ins without a success: the attacks ``brute_force`` (which needs the success) and
``password_spraying`` (which needs many accounts) do not see.

Four rules, two shapes, two scopes:

- ``account_sign_in_failures`` (actor scope): at least ``failures`` failed sign-ins against
  one account within ``window_minutes`` (default 10 in 10 min), from any number of sources;
- ``source_sign_in_failures`` (IP scope): at least ``failures`` failed sign-ins from one source
  address within ``window_minutes``, whichever accounts they try (default 15 in 10 min: a
  source hammering ``root`` on sshd, or guessing user names);
- ``slow_account_sign_in_failures`` / ``slow_source_sign_in_failures``: low and slow, at least
  ``failures`` failures within ``window_minutes`` (a day) spread over at least
  ``min_hours`` distinct clock hours, so an attacker staying under the burst rules is still
  seen. The account rule leaves out failures from addresses the account signs in from
  successfully, before or after them (a phone with a stale password retrying all day, a user
  mistyping on a new network, are not attacks); defaults 12 failures over at least 4 hours
  within a day for an account, 30 for a source.

Severities stay below brute force followed by a success (high): ``medium`` for bursts, ``low``
for low and slow. A long attack is one incident (``incidents``; ``detectors/base.py``): one
alert, re-sent with the same id as its count doubles. Counts are kept per minute (bursts) or
per hour (low and slow) and evidence as a time-sorted list trimmed in the middle, so state is
bounded and the same failures give the same counts, window and evidence in any arrival order.
Networks whose users share an address (an office NAT, an SSO proxy) can be listed in
``allowed_networks`` for the source rules.
"""

from __future__ import annotations

import bisect
import uuid
from typing import Any, ClassVar

from pydantic import Field

from auditstream.detectors.base import Detector, DetectorSettings, Finding, Scope
from auditstream.detectors.brute_force import (
    AllowedNetworks,
    _allowed,
    is_failed_sign_in,
    is_sign_in,
)
from auditstream.detectors.timeutil import from_millis, millis
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import MAX_EVIDENCE, Observation, Severity
from auditstream.schemas.event import AuditEvent

HEAD = 10
"""Evidence kept from the start of a run; the rest of ``MAX_EVIDENCE`` from its end."""
MAX_OTHERS = 50
"""Distinct accounts (source rules) or sources (account rules) named per run."""
MAX_KNOWN = 20
"""Addresses an account signed in from successfully, remembered for the slow account rule."""


class FailureSettings(DetectorSettings):
    failures: int = Field(default=10, ge=2, description="Failed sign-ins within the window")
    window_minutes: float = Field(default=10.0, gt=0, le=1440)
    min_hours: int = Field(
        default=1, ge=1, le=24, description="Distinct clock hours the failures must span"
    )
    allowed_networks: AllowedNetworks = Field(default_factory=list)


class SourceBurstSettings(FailureSettings):
    failures: int = Field(default=15, ge=2)


class SlowAccountSettings(FailureSettings):
    failures: int = Field(default=12, ge=2)
    window_minutes: float = Field(default=1440.0, gt=0, le=1440)
    min_hours: int = Field(default=4, ge=1, le=24)


class SlowSourceSettings(FailureSettings):
    failures: int = Field(default=30, ge=2)
    window_minutes: float = Field(default=1440.0, gt=0, le=1440)
    min_hours: int = Field(default=4, ge=1, le=24)


class FailedSignIns(Detector[FailureSettings]):
    """Failed sign-ins of one subject (an account or a source): bursts, or low and slow."""

    settings = FailureSettings
    incidents = True
    severity: ClassVar[Severity] = Severity.MEDIUM
    bucket_ms: ClassVar[int] = 60_000
    slow: ClassVar[bool] = False
    mitre = ("T1110", "Brute Force")

    def wants(self, event: AuditEvent) -> bool:
        if self.scope is Scope.IP:
            return event.ip is not None and is_failed_sign_in(event)
        return event.action in (Action.SIGN_IN, Action.SIGN_IN_FAILED)

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: FailureSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        now = millis(event.occurred_at)
        if is_sign_in(event):
            if self.slow and event.ip:  # an address this account really uses
                known = [ip for ip in state.get("k", []) if ip != event.ip][-(MAX_KNOWN - 1) :]
                state["k"] = [*known, event.ip]
                # Its earlier failures were the user's own typing, not guessing.
                state.get("b", {}).pop(event.ip, None)
                run = state.get("r")
                if run is not None and event.ip in run["o"]:
                    run["n"] -= run["o"].pop(event.ip)
            return []
        if not is_failed_sign_in(event):
            return []
        if event.ip is not None and _allowed(event.ip, settings.allowed_networks):
            return []
        if self.slow and self.scope is Scope.ACTOR and event.ip in state.get("k", []):
            return []
        window = int(settings.window_minutes * 60_000)
        run = state.get("r")
        if run is not None and now > run["e"] + window:
            run = None  # quiet for a whole window: a new run
        if run is not None and now < run["s"] - window:
            return []  # far older than this run: its own run was reported (or not) then
        if run is None:
            run = {"s": now, "e": now, "n": 0, "o": {}, "ev": [], "hot": False}
        run["s"], run["e"], run["n"] = min(run["s"], now), max(run["e"], now), run["n"] + 1
        other = (event.actor.id if self.scope is Scope.IP else event.ip) or "-"
        if other in run["o"] or len(run["o"]) < MAX_OTHERS:
            run["o"][other] = run["o"].get(other, 0) + 1
        bisect.insort(run["ev"], [now, str(event.event_id)])
        if len(run["ev"]) > MAX_EVIDENCE:
            del run["ev"][HEAD]  # keep the first and the latest: the same in any order
        # Counts per time slot, per source address for the slow account rule (so a later
        # success from an address can take its failures back), else under one key.
        per: dict[str, dict[str, int]] = state.get("b", {})
        key = (event.ip or "-") if self.slow and self.scope is Scope.ACTOR else "*"
        if key not in per and len(per) >= MAX_OTHERS:
            key = "*"  # bounded: beyond 50 addresses, counted together (never taken back)
        slot = now // self.bucket_ms
        span = max(1, -(-window // self.bucket_ms))
        own = per.setdefault(key, {})
        own[str(slot)] = own.get(str(slot), 0) + 1
        newest = max(int(k) for counts in per.values() for k in counts)
        kept = {
            k: {s: n for s, n in counts.items() if int(s) > newest - 2 * span}
            for k, counts in per.items()
        }
        state["b"] = {k: v for k, v in kept.items() if v}
        state["r"] = run
        if not run["hot"]:
            merged: dict[str, int] = {}
            for counts in state["b"].values():
                for s, n in counts.items():
                    merged[s] = merged.get(s, 0) + n
            run["hot"] = self._crossed(merged, slot, span, settings)
        if not run["hot"]:
            return []
        return [self._finding(event, run, settings)]

    def _crossed(
        self, buckets: dict[str, int], slot: int, span: int, settings: FailureSettings
    ) -> bool:
        """Whether any window of ``span`` buckets that holds ``slot`` reaches the threshold
        (every such window, not only the one ending now: a late failure can complete one)."""
        low = slot - span + 1
        counts = [buckets.get(str(s), 0) for s in range(low, slot + span)]
        for start in range(span):
            chunk = counts[start : start + span]
            if sum(chunk) < settings.failures:
                continue
            hours = {
                (low + start + i) * self.bucket_ms // 3_600_000 for i, c in enumerate(chunk) if c
            }
            if len(hours) >= settings.min_hours:
                return True
        return False

    def _finding(
        self, event: AuditEvent, run: dict[str, Any], settings: FailureSettings
    ) -> Finding:
        start, end, count = run["s"], run["e"], run["n"]
        minutes = (end - start) / 60_000
        others = sorted(run["o"], key=lambda o: (-run["o"][o], o))
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        if self.scope is Scope.IP:
            subject = f"source {event.ip}"
            spread = f"against {len(others)} account(s): {shown}"
        else:
            subject = f"account {event.actor.id}"
            spread = f"from {len(others)} source(s): {shown}"
        pace = "over" if self.slow else "within"
        rule = (
            f"{settings.failures} within {settings.window_minutes / 60:g} h over at least "
            f"{settings.min_hours} distinct hours"
            if self.slow
            else f"{settings.failures} within {settings.window_minutes:g} minutes"
        )
        return Finding(
            severity=self.severity,
            title=f"{count} failed sign-ins, no success, for {subject}",
            explanation=(
                f"{count} failed sign-ins for {subject} {pace} {minutes:.1f} minutes "
                f"({from_millis(start):%Y-%m-%d %H:%M:%S} to {from_millis(end):%H:%M:%S} UTC) "
                f"{spread}, and no success among them. The threshold is {rule}; a success "
                "after such failures is brute force (high)."
            ),
            window_start=from_millis(start),
            window_end=from_millis(end),
            evidence=[uuid.UUID(e[1]) for e in run["ev"]],
            observations=[
                Observation(
                    metric="failed_sign_ins",
                    observed=count,
                    baseline=settings.failures,
                    unit=f"per {settings.window_minutes:g} min",
                ),
                Observation(
                    metric="distinct_accounts" if self.scope is Scope.IP else "distinct_sources",
                    observed=len(others),
                ),
            ],
            magnitude=count,
            extra={"accounts" if self.scope is Scope.IP else "sources": others[:MAX_OTHERS]},
        )


class AccountSignInFailures(FailedSignIns):
    name = "account_sign_in_failures"
    mitre = ("T1110.001", "Brute Force: Password Guessing")


class SourceSignInFailures(FailedSignIns):
    name = "source_sign_in_failures"
    scope = Scope.IP
    settings = SourceBurstSettings


class SlowAccountSignInFailures(FailedSignIns):
    name = "slow_account_sign_in_failures"
    settings = SlowAccountSettings
    severity = Severity.LOW
    bucket_ms = 3_600_000
    slow = True
    mitre = ("T1110.001", "Brute Force: Password Guessing")


class SlowSourceSignInFailures(FailedSignIns):
    name = "slow_source_sign_in_failures"
    scope = Scope.IP
    settings = SlowSourceSettings
    severity = Severity.LOW
    bucket_ms = 3_600_000
    slow = True
