"""The review on record: the owner's sign-off is an audit event in the tenant's own log, sent
through the producer SDK to the raw topic (so it is chained and verifiable like any other);
an overdue review raises a low-severity ``review_overdue`` alert on the alert topic."""

from __future__ import annotations

from datetime import datetime

from auditstream.config import Settings
from auditstream.reviews.report import _iso
from auditstream.reviews.schedule import REVIEW_RESOURCE, Schedule, Status
from auditstream.schemas.alert import Alert, Severity, stable_alert_id

COMMAND = "auditstream reviews sign-off"


class ReviewError(RuntimeError):
    """A review action was refused or could not be recorded; the message says why."""


def review_id(tenant: str, lo: datetime, hi: datetime) -> str:
    return f"{tenant}:{lo:%Y-%m-%d}..{hi:%Y-%m-%d}"


def sign_off(
    settings: Settings,
    schedule: Schedule,
    by: str,
    note: str,
    lo: datetime,
    hi: datetime,
    *,
    report_sha256: str = "",
    channel: str = "cli",
    via: str = "",
    timeout: float = 15.0,
) -> str:
    """Record the sign-off and wait for Kafka's acknowledgement; returns the event id.
    ``via``: who actually recorded it (the API token's id, the OS user), kept beside
    the owner's name."""

    if by != schedule.owner:
        raise ReviewError(
            f"only the review's owner ({schedule.owner}) signs it off, not {by}: "
            "change the owner with `auditstream reviews schedule --owner`"
        )
    if not note.strip():
        raise ReviewError("a sign-off needs a note (what was reviewed, what was found)")
    rid = review_id(schedule.tenant, lo, hi)
    from auditstream.producers.acknowledged import NotAcknowledged, send_acknowledged

    try:
        event_id = send_acknowledged(
            settings,
            "auditstream-reviews",
            timeout,
            tenant_id=schedule.tenant,
            actor={"id": by, "type": "member"},
            action="status_change",
            resource={"type": REVIEW_RESOURCE, "id": rid, "name": f"Audit review {rid}"},
            changes=[{"field": "review_status", "old": "open", "new": "signed_off"}],
            outcome="success",
            channel=channel,
            metadata={
                "period_from": _iso(lo),
                "period_to": _iso(hi),
                "every": schedule.every.value,
                "note": note[:2000],
                "report_sha256": report_sha256,
                "recorded_via": via,
                "command": COMMAND,
            },
        )
    except NotAcknowledged as exc:
        raise ReviewError(
            f"{exc}: the review is NOT signed off. Check the broker and retry."
        ) from exc
    return event_id


def overdue_alert(st: Status, now: datetime) -> Alert:
    s = st.schedule
    period = f"{st.due_from:%Y-%m-%d} to {st.due_to:%Y-%m-%d}"
    return Alert(
        alert_id=stable_alert_id("review_overdue", s.tenant, f"review:{s.every}", st.due_from),
        rule="review_overdue",
        severity=Severity.LOW,
        tenant_id=s.tenant,
        actor_id=s.owner,
        subject=s.owner,
        title=f"The {s.every.value}ly audit review for {period} is not signed off",
        explanation=(
            f"The tenant's audit log is reviewed every {s.every.value} by {s.owner}; the review "
            f"of {period} (UTC, end exclusive) has no sign-off in the log. Run `auditstream "
            "reviews run` for the period and sign it off with `auditstream reviews sign-off`."
        ),
        window_start=st.due_from,
        window_end=st.due_to,
        first_seen=now,
        last_seen=now,
        mitre_technique="",
        mitre_name="",
        context={"every": s.every.value, "owner": s.owner},
        detected_at=now,
    )
