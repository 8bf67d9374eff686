"""GitHub audit log (REST ``/orgs/{org}/audit-log`` or ``/enterprises/{e}/audit-log``, and
audit log streaming): JSON array or JSON Lines of entries with ``action`` and ``@timestamp``."""

from __future__ import annotations

from typing import Any

from auditstream.schemas.actions import canonical_action
from auditstream.sources.base import (
    Options,
    Parsed,
    clean,
    country,
    ip_or_none,
    millis_or_iso,
    records,
    source_event_id,
)

_EXACT = {
    "user.login": "sign_in",
    "user.failed_login": "sign_in_failed",
    "user.logout": "sign_out",
    "org.invite_member": "invite",
    "business.invite_admin": "invite",
    "org.update_member": "role_change",
    "repo.download_zip": "export",
    "git.clone": "export",
    "git.fetch": "access",
}
_SUFFIX = {
    "add_member": "permission_change",
    "remove_member": "permission_change",
    "add_admin": "role_change",
    "remove_admin": "role_change",
    "update_member_repository_permission": "permission_change",
    "destroy": "delete",
    "access": "status_change",  # repo.access: a repository's visibility changed
}
_OPERATIONS = {
    "create": "create",
    "remove": "delete",
    "modify": "update",
    "access": "access",
    "restore": "restore",
    "transfer": "update",
    "authentication": "sign_in",
}


def action_of(name: str, operation: str | None) -> str:
    if name in _EXACT:
        return _EXACT[name]
    suffix = name.rsplit(".", 1)[-1]
    if suffix in _SUFFIX:
        return _SUFFIX[suffix]
    if "failed" in suffix and (operation == "authentication" or "login" in suffix):
        return "sign_in_failed"
    if operation in _OPERATIONS:
        return _OPERATIONS[operation]
    found = canonical_action(suffix)
    return found.value if found is not None else "update"


def parse(text: str, options: Options) -> Parsed:
    out = Parsed()
    for record in records(text):
        name = record.get("action")
        stamp = record.get("@timestamp", record.get("created_at"))
        if not isinstance(name, str) or stamp is None:
            out.skip("not a GitHub audit log entry")
            continue
        at = millis_or_iso(stamp)
        action = action_of(name, record.get("operation_type"))
        if record.get("repo") or record.get("repository"):
            resource = {"type": "repository", "id": str(record.get("repo") or record["repository"])}
        elif record.get("user") and name.startswith(("org.", "team.", "business.")):
            resource = {"type": "user", "id": str(record["user"])}
        elif record.get("org"):
            resource = {"type": "organization", "id": str(record["org"])}
        else:
            resource = {"type": name.split(".", 1)[0], "id": str(record.get("business") or "-")}
        actor = str(record.get("actor") or "github")
        location = record.get("actor_location") or {}
        event: dict[str, Any] = {
            "event_id": source_event_id(at, "github", str(record.get("_document_id") or record)),
            "occurred_at": at,
            "tenant_id": options.tenant_id,
            "actor": {"id": actor, "type": "member" if record.get("actor") else "system"},
            "action": action,
            "outcome": "failure" if action == "sign_in_failed" else "success",
            "resource": resource,
            "ip": ip_or_none(record.get("actor_ip")),
            "user_agent": record.get("user_agent"),
            "metadata": {
                "source": "github",
                "github_action": name,
                "operation_type": record.get("operation_type"),
                "document_id": record.get("_document_id"),
                "actor_id": record.get("actor_id"),
            },
        }
        if "permission" in record or "old_permission" in record:
            event["changes"] = [
                {
                    "field": "permission",
                    "old": record.get("old_permission"),
                    "new": record.get("permission"),
                }
            ]
        if country(location.get("country_code")):
            event["location"] = {"country": country(location.get("country_code"))}
        out.events.append(clean(event))
    return out
