"""Okta System Log (``/api/v1/logs``: a JSON array of LogEvent objects, or JSON Lines)."""

from __future__ import annotations

from typing import Any

from auditstream.schemas.actions import canonical_action
from auditstream.sources.base import (
    Options,
    Parsed,
    clean,
    country,
    ip_or_none,
    iso,
    records,
    source_event_id,
)

_ACTIONS = {
    "user.session.start": "sign_in",
    "user.session.end": "sign_out",
    "user.account.lock": "status_change",
    "user.account.unlock": "status_change",
    "user.lifecycle.create": "create",
    "user.lifecycle.activate": "status_change",
    "user.lifecycle.deactivate": "status_change",
    "user.lifecycle.suspend": "status_change",
    "user.lifecycle.unsuspend": "status_change",
    "user.lifecycle.delete.initiated": "delete",
    "user.lifecycle.delete.completed": "delete",
    "user.account.update_password": "update",
    "user.account.reset_password": "update",
    "user.account.privilege.grant": "role_change",
    "user.account.privilege.revoke": "role_change",
    "group.user_membership.add": "permission_change",
    "group.user_membership.remove": "permission_change",
    "application.user_membership.add": "permission_change",
    "application.user_membership.remove": "permission_change",
    "system.api_token.create": "create",
    "system.api_token.revoke": "delete",
}
_AUTH_STEPS = ("user.authentication.",)
"""Factor checks within one sign-in: a failure is a failed sign-in, a success is not another."""
_OUTCOMES = {"SUCCESS": "success", "ALLOW": "success", "FAILURE": "failure", "DENY": "denied"}
_ACTOR_TYPES = {"User": "member", "SystemPrincipal": "system", "PublicClientApp": "api"}


def parse(text: str, options: Options) -> Parsed:
    out = Parsed()
    for record in records(text):
        if "eventType" not in record or "published" not in record:
            out.skip("not an Okta LogEvent")
            continue
        kind = str(record["eventType"])
        result = str((record.get("outcome") or {}).get("result") or "SUCCESS").upper()
        outcome = _OUTCOMES.get(result, "success")
        action = _ACTIONS.get(kind)
        if kind.startswith(_AUTH_STEPS):
            action = "access"
        if action is None:
            if kind.startswith(("policy.", "system.", "org.")):
                action = "settings_change"
            else:
                action = str(canonical_action(kind.rsplit(".", 1)[-1]) or "access")
        if (
            action in ("sign_in", "access")
            and outcome != "success"
            and (kind == "user.session.start" or kind.startswith(_AUTH_STEPS))
        ):
            action = "sign_in_failed"
        at = iso(str(record["published"]))
        actor = record.get("actor") or {}
        login = actor.get("alternateId") or actor.get("id") or "unknown"
        client = record.get("client") or {}
        geo = client.get("geographicalContext") or {}
        point = geo.get("geolocation") or {}
        target = (record.get("target") or [{}])[0] or {}
        event: dict[str, Any] = {
            "event_id": source_event_id(at, "okta", str(record.get("uuid") or record)),
            "occurred_at": at,
            "tenant_id": options.tenant_id,
            "actor": {
                "id": str(login),
                "type": _ACTOR_TYPES.get(str(actor.get("type")), "member"),
                "display_name": actor.get("displayName"),
                "email": login if "@" in str(login) else None,
            },
            "action": action,
            "outcome": outcome,
            "resource": {
                "type": str(target.get("type") or "okta").lower().replace(" ", "_"),
                "id": str(target.get("alternateId") or target.get("id") or kind),
                "name": target.get("displayName"),
            },
            "ip": ip_or_none(client.get("ipAddress")),
            "user_agent": ((client.get("userAgent") or {}).get("rawUserAgent")),
            "session_id": ((record.get("authenticationContext") or {}).get("externalSessionId")),
            "correlation_id": ((record.get("transaction") or {}).get("id")),
            "metadata": {
                "source": "okta",
                "event_type": kind,
                "okta_uuid": record.get("uuid"),
                "outcome_reason": (record.get("outcome") or {}).get("reason"),
            },
        }
        if geo:
            event["location"] = {
                "country": country(geo.get("country")),
                "region": geo.get("state"),
                "city": geo.get("city"),
                "latitude": point.get("lat"),
                "longitude": point.get("lon"),
            }
        out.events.append(clean(event))
    return out
