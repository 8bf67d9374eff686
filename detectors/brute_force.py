"""Password attacks: brute force against one account, and password spraying from one IP.

A failed sign-in is ``sign_in_failed`` (any outcome) or ``sign_in`` with outcome failure or
denied; a successful one is ``sign_in`` with outcome success.

- **Brute force** (actor scope): at least ``failures`` failed sign-ins within
  ``window_minutes`` of each other, the last of them at most ``success_within_minutes``
  before a successful sign-in. The success is what makes it high severity: the password was
  probably guessed. A forgotten password (two to four tries, then success) stays quiet with
  the defaults, and any success clears the actor's failures.
- **Password spraying** (IP scope): failed sign-ins for at least ``min_actors`` distinct
  actors from one source IP within ``window_minutes``. One actor failing many times from one
  IP is brute force, not spraying: it counts once. Networks whose users legitimately share
  an address (an office NAT, an SSO proxy) can be listed in ``allowed_networks``.
"""

from __future__ import annotations

import bisect
import ipaddress
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from auditstream.detectors.base import Detector, DetectorSettings, Finding, Scope
from auditstream.detectors.timeutil import from_millis, millis
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import MAX_EVIDENCE, Observation, Severity
from auditstream.schemas.event import AuditEvent, Outcome


def is_failed_sign_in(event: AuditEvent) -> bool:
    if event.action is Action.SIGN_IN_FAILED:
        return True
    return event.action is Action.SIGN_IN and event.outcome is not Outcome.SUCCESS


def is_sign_in(event: AuditEvent) -> bool:
    return event.action is Action.SIGN_IN and event.outcome is Outcome.SUCCESS


def _networks(value: list[str]) -> list[str]:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not a network like '10.0.0.0/8'") from None
    return value


AllowedNetworks = Annotated[
    list[str],
    AfterValidator(_networks),
    Field(description="CIDRs whose users share an address (office NAT, SSO proxy): never alert"),
]
"""The ``allowed_networks`` setting of the rules about failed sign-ins from one address."""


class BruteForceSettings(DetectorSettings):
    failures: int = Field(
        default=5,
        ge=2,
        le=MAX_EVIDENCE - 1,
        description="Failed sign-ins within the window that, followed by a success, alert",
    )
    window_minutes: float = Field(
        default=10.0, gt=0, description="The failures all fall within this many minutes"
    )
    success_within_minutes: float = Field(
        default=10.0, gt=0, description="Success at most this long after the last failure"
    )


class BruteForce(Detector[BruteForceSettings]):
    name = "brute_force"
    settings = BruteForceSettings
    mitre = ("T1110.001", "Brute Force: Password Guessing")

    def wants(self, event: AuditEvent) -> bool:
        return event.action in (Action.SIGN_IN, Action.SIGN_IN_FAILED)

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: BruteForceSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        now = millis(event.occurred_at)
        window = int(settings.window_minutes * 60_000)
        follow = int(settings.success_within_minutes * 60_000)
        # [millis, event id, ip] of recent failures, oldest first.
        failed: list[list[Any]] = state.get("f", [])
        if is_failed_sign_in(event):
            # Older failures can no longer be part of a burst a future success follows.
            horizon = now - window - follow
            bisect.insort(failed, [now, str(event.event_id), event.ip or ""], key=_at)
            state["f"] = [f for f in failed if f[0] >= horizon][-MAX_EVIDENCE:]
            return []
        if not is_sign_in(event):
            return []
        state.pop("f", None)  # a success ends the streak, whatever came before it
        burst = _burst(failed, now, window, follow)
        if len(burst) < settings.failures:
            return []
        return [self._finding(event, burst, settings)]

    def _finding(
        self, event: AuditEvent, burst: list[list[Any]], settings: BruteForceSettings
    ) -> Finding:
        first, last = burst[0][0], burst[-1][0]
        span = (last - first) / 60_000
        gap = (millis(event.occurred_at) - last) / 1000
        ips = sorted({f[2] for f in burst if f[2]})
        sources = f" from {len(ips)} IP(s): {', '.join(ips[:5])}" if ips else ""
        success_ip = f" from {event.ip}" if event.ip else ""
        return Finding(
            severity=Severity.HIGH,
            title=f"{len(burst)} failed sign-ins, then success, for "
            f"{event.actor.display_name or event.actor.id}",
            explanation=(
                f"{event.actor.id} had {len(burst)} failed sign-ins within {span:.1f} minutes"
                f"{sources}, then signed in successfully{success_ip} {gap:.0f} s after the "
                f"last failure. The threshold is {settings.failures} failures within "
                f"{settings.window_minutes:g} minutes followed by a success within "
                f"{settings.success_within_minutes:g} minutes: the password was probably "
                f"guessed."
            ),
            window_start=from_millis(first),
            window_end=event.occurred_at,
            evidence=[*(uuid.UUID(f[1]) for f in burst), event.event_id],
            observations=[
                Observation(
                    metric="failed_sign_ins",
                    observed=len(burst),
                    baseline=settings.failures,
                    unit=f"per {settings.window_minutes:g} min",
                ),
                Observation(metric="seconds_to_success", observed=gap, unit="s"),
            ],
            first_seen=from_millis(first),
            last_seen=event.occurred_at,
        )


def _at(entry: list[Any]) -> int:
    return int(entry[0])


def _burst(failed: list[list[Any]], now: int, window: int, follow: int) -> list[list[Any]]:
    """The largest run of failures within ``window`` of each other whose last one is at most
    ``follow`` before ``now`` (and not after it)."""
    best: list[list[Any]] = []
    left = 0
    for right, entry in enumerate(failed):
        if entry[0] > now:
            break
        while entry[0] - failed[left][0] > window:
            left += 1
        if entry[0] >= now - follow and right - left + 1 > len(best):
            best = failed[left : right + 1]
    return best


class SprayingSettings(DetectorSettings):
    min_actors: int = Field(
        default=10,
        ge=2,
        le=MAX_EVIDENCE,
        description="Distinct actors with failed sign-ins from one IP within the window",
    )
    window_minutes: float = Field(default=30.0, gt=0)
    allowed_networks: AllowedNetworks = Field(default_factory=list)


class PasswordSpraying(Detector[SprayingSettings]):
    """Order-independent: failures are kept sorted by event time, the threshold is checked on
    every window that holds the new failure (a late one can complete a window), and the alert
    describes the run of failures (gaps under ``window_minutes``) from its own event times.
    A spray that goes on is one incident (``incidents``): one id, re-sent as accounts double.
    """

    name = "password_spraying"
    scope = Scope.IP
    settings = SprayingSettings
    mitre = ("T1110.003", "Brute Force: Password Spraying")
    incidents = True

    def wants(self, event: AuditEvent) -> bool:
        return event.ip is not None and is_failed_sign_in(event)

    def observe(
        self,
        event: AuditEvent,
        state: dict[str, Any],
        settings: SprayingSettings,
        tenant: dict[str, Any],
    ) -> list[Finding]:
        if event.ip is None or _allowed(event.ip, settings.allowed_networks):
            return []
        now = millis(event.occurred_at)
        window = int(settings.window_minutes * 60_000)
        run: dict[str, Any] | None = state.get("r")
        if run is not None and now > run["e"] + window:
            run = None  # quiet for a whole window: a new run
        if run is not None and now < run["s"] - window:
            return []  # far older than this run: reported (or not) with its own run
        if run is None:
            run = {"s": now, "e": now, "n": 0, "a": {}, "hot": False}
        run["s"], run["e"], run["n"] = min(run["s"], now), max(run["e"], now), run["n"] + 1
        actor = event.actor.id
        seen = run["a"].get(actor)
        entry = [now, str(event.event_id)]
        if seen is None:
            if len(run["a"]) < MAX_ACTORS:
                run["a"][actor] = [1, *entry]
        else:
            seen[0] += 1
            if entry < seen[1:]:
                seen[1:] = entry  # each account's first failure, whatever the order
        recent: list[list[Any]] = state.get("f", [])
        bisect.insort(recent, [now, actor])
        newest = max(recent[-1][0], now)
        recent = [f for f in recent if f[0] > newest - 2 * window][-MAX_RECENT:]
        state["f"], state["r"] = recent, run
        if not run["hot"]:
            run["hot"] = _spray_window(recent, now, window) >= settings.min_actors
        if not run["hot"]:
            return []
        return [self._finding(event, run, settings)]

    def _finding(
        self, event: AuditEvent, run: dict[str, Any], settings: SprayingSettings
    ) -> Finding:
        actors: dict[str, list[Any]] = run["a"]
        first, last, attempts = run["s"], run["e"], run["n"]
        names = sorted(actors)
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        minutes = (last - first) / 60_000
        firsts = sorted(v[1:] for v in actors.values())
        return Finding(
            severity=Severity.HIGH,
            title=f"Password spraying from {event.ip}: {len(actors)} accounts",
            explanation=(
                f"{event.ip} had failed sign-ins for {len(actors)} distinct accounts "
                f"({attempts} attempts) within {minutes:.1f} minutes: {shown}. The threshold "
                f"is {settings.min_actors} accounts within {settings.window_minutes:g} minutes."
            ),
            window_start=from_millis(first),
            window_end=from_millis(last),
            evidence=[uuid.UUID(f[1]) for f in firsts[:MAX_EVIDENCE]],
            observations=[
                Observation(
                    metric="distinct_actors_failed",
                    observed=len(actors),
                    baseline=settings.min_actors,
                    unit=f"per {settings.window_minutes:g} min",
                ),
                Observation(metric="failed_sign_ins", observed=attempts),
            ],
            magnitude=len(actors),
            extra={"actors": names[:MAX_EVIDENCE]},
        )


MAX_ACTORS = 500
"""Accounts a spraying run names (its attempts are counted beyond)."""
MAX_RECENT = 2000
"""Failures from one IP kept to find the windows (about two windows' worth)."""


def _spray_window(recent: list[list[Any]], now: int, window: int) -> int:
    """The most distinct actors in any ``window`` of ``recent`` (sorted) that holds ``now``."""
    chunk = [f for f in recent if now - window <= f[0] <= now + window]
    best = 0
    counts: dict[str, int] = {}
    left = 0
    for right, (at, actor) in enumerate(chunk):
        counts[actor] = counts.get(actor, 0) + 1
        while at - chunk[left][0] > window:
            gone = chunk[left][1]
            counts[gone] -= 1
            if not counts[gone]:
                del counts[gone]
            left += 1
        if chunk[left][0] <= now <= at:
            best = max(best, len(counts))
        del right
    return best


def _allowed(ip: str, networks: list[str]) -> bool:
    if not networks:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
