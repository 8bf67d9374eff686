"""Google Workspace login audit (Reports API ``activities.list`` for ``applicationName=login``):
the response (``{"items": [...]}``), an array of activities or JSON Lines. One activity can
hold several events; each is one audit event."""

from __future__ import annotations

from typing import Any

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
    "login_success": "sign_in",
    "login_failure": "sign_in_failed",
    "logout": "sign_out",
    "login_challenge": "access",
    "login_verification": "access",
    "suspicious_login": "access",
    "suspicious_login_less_secure_app": "access",
    "suspicious_programmatic_login": "access",
    "password_edit": "update",
    "2sv_enroll": "settings_change",
    "2sv_disable": "settings_change",
    "recovery_email_edit": "update",
    "recovery_phone_edit": "update",
    "account_disabled_password_leak": "status_change",
    "account_disabled_hijacked": "status_change",
    "account_disabled_spamming": "status_change",
    "account_disabled_generic": "status_change",
}
_FAILED_STEPS = ("challenge failed", "failed")


def _params(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in event.get("parameters") or []:
        if not isinstance(p, dict) or "name" not in p:
            continue
        for key in ("value", "boolValue", "intValue", "multiValue"):
            if key in p:
                out[str(p["name"])] = p[key]
                break
    return out


def parse(text: str, options: Options) -> Parsed:
    out = Parsed()
    for record in records(text, "items"):
        ident = record.get("id") or {}
        if not isinstance(ident, dict) or "time" not in ident:
            out.skip("not a Reports API activity")
            continue
        if ident.get("applicationName", "login") != "login":
            out.skip(f"application {ident.get('applicationName')}")
            continue
        at = iso(str(ident["time"]))
        actor = record.get("actor") or {}
        who = str(actor.get("email") or actor.get("profileId") or "unknown")
        network = record.get("networkInfo") or {}
        for index, item in enumerate(record.get("events") or []):
            name = str(item.get("name") or "")
            params = _params(item)
            action = _ACTIONS.get(name)
            if action is None:
                out.skip(f"login event {name or '?'}")
                continue
            status = str(params.get("login_challenge_status", "")).lower()
            if action == "access" and status.startswith(_FAILED_STEPS):
                action = "sign_in_failed"
            event: dict[str, Any] = {
                "event_id": source_event_id(
                    at, "google", str(ident.get("uniqueQualifier")), who, str(index), name
                ),
                "occurred_at": at,
                "tenant_id": options.tenant_id,
                "actor": {"id": who, "email": who if "@" in who else None},
                "action": action,
                "outcome": "failure" if action == "sign_in_failed" else "success",
                "resource": {"type": "google_account", "id": who},
                "ip": ip_or_none(record.get("ipAddress")),
                "metadata": {
                    "source": "google-login",
                    "event_name": name,
                    "login_type": params.get("login_type"),
                    "login_failure_type": params.get("login_failure_type"),
                    "is_suspicious": params.get("is_suspicious"),
                    "unique_qualifier": ident.get("uniqueQualifier"),
                },
            }
            if country(network.get("regionCode")):
                event["location"] = {
                    "country": country(network.get("regionCode")),
                    "region": network.get("subdivisionCode"),
                }
            out.events.append(clean(event))
    return out
