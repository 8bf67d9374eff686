"""AWS CloudTrail (log files ``{"Records": [...]}``, ``lookup-events`` output's
``CloudTrailEvent`` strings, or JSON Lines of records)."""

from __future__ import annotations

import json
import re
from typing import Any

from auditstream.sources.base import (
    Options,
    Parsed,
    clean,
    ip_or_none,
    iso,
    records,
    source_event_id,
)

_PERMISSION = re.compile(
    r"^(Attach|Detach|Put|Delete)(User|Role|Group)Policy$|^(Add|Remove)UserToGroup$|"
    r"^(Create|Update|Delete)(AccessKey|LoginProfile)$|^(Put|Delete)BucketPolicy$|"
    r"^(Authorize|Revoke)SecurityGroup(Ingress|Egress)$"
)
_PREFIXES = (
    (("Delete", "Remove", "Terminate", "Deregister", "Disable", "Stop"), "delete"),
    (("Create", "Run", "Register", "Import", "Allocate", "Launch"), "create"),
    (("Put", "Update", "Modify", "Set", "Change", "Replace", "Attach", "Detach"), "update"),
    (("Get", "List", "Describe", "Head", "Lookup", "Search", "Select", "Decrypt"), "access"),
    (("Enable", "Start", "Restore"), "status_change"),
)
_DENIED = ("AccessDenied", "Client.UnauthorizedOperation", "UnauthorizedOperation")


def action_of(name: str) -> str:
    if name in ("ConsoleLogin", "CheckMfa"):
        return "sign_in"
    if _PERMISSION.match(name):
        return "permission_change"
    for prefixes, action in _PREFIXES:
        if name.startswith(prefixes):
            return action
    return "update"


def _actor(identity: dict[str, Any]) -> dict[str, Any]:
    kind = str(identity.get("type") or "")
    issuer = ((identity.get("sessionContext") or {}).get("sessionIssuer")) or {}
    name = identity.get("userName") or issuer.get("userName") or identity.get("principalId")
    if kind == "Root":
        name = f"root:{identity.get('accountId')}"
    arn = str(identity.get("arn") or "")
    if kind == "AssumedRole" and "/" in arn:
        name = arn.split("/", 1)[1]  # role/session, e.g. admin/alice@example.com
    service = kind in ("AWSService", "AWSAccount") or identity.get("invokedBy")
    return {
        "id": str(name or arn or "unknown"),
        "type": "service" if service else "member",
        "display_name": arn or None,
    }


def parse(text: str, options: Options) -> Parsed:
    out = Parsed()
    for record in records(text, "Records", "Events"):
        if isinstance(record.get("CloudTrailEvent"), str):  # lookup-events output
            record = json.loads(record["CloudTrailEvent"])
        if "eventName" not in record or "eventTime" not in record:
            out.skip("not a CloudTrail record")
            continue
        name = str(record["eventName"])
        at = iso(str(record["eventTime"]))
        action = action_of(name)
        response = record.get("responseElements") or {}
        error = record.get("errorCode")
        outcome = "success"
        if name == "ConsoleLogin" and (
            (isinstance(response, dict) and response.get("ConsoleLogin") == "Failure") or error
        ):
            action, outcome = "sign_in_failed", "failure"
        elif error:
            outcome = "denied" if str(error) in _DENIED or "Denied" in str(error) else "failure"
        params = record.get("requestParameters")
        target = _target(params if isinstance(params, dict) else {}, record)
        extra = record.get("additionalEventData") or {}
        event: dict[str, Any] = {
            "event_id": source_event_id(at, "cloudtrail", str(record.get("eventID") or record)),
            "occurred_at": at,
            "tenant_id": options.tenant_id,
            "actor": _actor(record.get("userIdentity") or {}),
            "action": action,
            "outcome": outcome,
            "resource": target,
            "ip": ip_or_none(record.get("sourceIPAddress")),
            "user_agent": record.get("userAgent"),
            "channel": "web" if name == "ConsoleLogin" else "api",
            "correlation_id": record.get("requestID"),
            "metadata": {
                "source": "cloudtrail",
                "event_source": record.get("eventSource"),
                "event_name": name,
                "aws_region": record.get("awsRegion"),
                "account_id": record.get("recipientAccountId"),
                "error_code": error,
                "error_message": record.get("errorMessage"),
                "mfa_used": extra.get("MFAUsed") if isinstance(extra, dict) else None,
            },
        }
        policy = _policy(params if isinstance(params, dict) else {})
        if action == "permission_change" and policy:
            attach = not name.startswith(("Detach", "Delete", "Remove", "Revoke"))
            event["changes"] = [
                {
                    "field": "policy",
                    "old": None if attach else policy,
                    "new": policy if attach else None,
                }
            ]
        out.events.append(clean(event))
    return out


def _policy(params: dict[str, Any]) -> str | None:
    """The policy a permission change attaches or removes (``AdministratorAccess``)."""
    value = params.get("policyArn") or params.get("policyName")
    return str(value).rsplit("/", 1)[-1] if value else None


def _target(params: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    resources = record.get("resources") or []
    if resources and isinstance(resources[0], dict) and resources[0].get("ARN"):
        first = resources[0]
        return {"type": str(first.get("type") or "aws").lower(), "id": str(first["ARN"])}
    for key, kind in (
        ("bucketName", "s3_bucket"),
        ("userName", "iam_user"),
        ("roleName", "iam_role"),
        ("groupName", "iam_group"),
        ("policyArn", "iam_policy"),
        ("instanceId", "ec2_instance"),
        ("functionName", "lambda_function"),
        ("keyId", "kms_key"),
    ):
        if isinstance(params.get(key), str):
            return {"type": kind, "id": params[key]}
    source = str(record.get("eventSource") or "aws").split(".", 1)[0]
    return {"type": source, "id": str(record.get("recipientAccountId") or "-")}
