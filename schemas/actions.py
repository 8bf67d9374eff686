"""The standard verb set, and the synonyms producers send for it."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"
    STATUS_CHANGE = "status_change"
    COMMENT = "comment"
    ASSIGN = "assign"
    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    SIGN_IN_FAILED = "sign_in_failed"
    EXPORT = "export"
    ACCESS = "access"
    PERMISSION_CHANGE = "permission_change"
    ROLE_CHANGE = "role_change"
    INVITE = "invite"
    SETTINGS_CHANGE = "settings_change"
    INTEGRATION_CONNECT = "integration_connect"
    INTEGRATION_DISCONNECT = "integration_disconnect"


_SYNONYMS: dict[str, Action] = {
    # create
    "created": Action.CREATE, "add": Action.CREATE, "added": Action.CREATE,
    "insert": Action.CREATE, "inserted": Action.CREATE, "new": Action.CREATE,
    # update
    "updated": Action.UPDATE, "edit": Action.UPDATE, "edited": Action.UPDATE,
    "modify": Action.UPDATE, "modified": Action.UPDATE, "change": Action.UPDATE,
    "changed": Action.UPDATE, "rename": Action.UPDATE, "renamed": Action.UPDATE,
    # delete
    "deleted": Action.DELETE, "remove": Action.DELETE, "removed": Action.DELETE,
    "destroy": Action.DELETE, "destroyed": Action.DELETE, "erase": Action.DELETE,
    "purge": Action.DELETE, "purged": Action.DELETE, "trash": Action.DELETE,
    "trashed": Action.DELETE, "archive_delete": Action.DELETE,
    # restore
    "restored": Action.RESTORE, "undelete": Action.RESTORE, "undeleted": Action.RESTORE,
    "untrash": Action.RESTORE, "recover": Action.RESTORE, "recovered": Action.RESTORE,
    # status change
    "status_changed": Action.STATUS_CHANGE, "archive": Action.STATUS_CHANGE,
    "archived": Action.STATUS_CHANGE, "unarchive": Action.STATUS_CHANGE,
    "activate": Action.STATUS_CHANGE, "deactivate": Action.STATUS_CHANGE,
    "enable": Action.STATUS_CHANGE, "disable": Action.STATUS_CHANGE,
    "complete": Action.STATUS_CHANGE, "completed": Action.STATUS_CHANGE,
    # comment / assign
    "commented": Action.COMMENT, "reply": Action.COMMENT, "replied": Action.COMMENT,
    "assigned": Action.ASSIGN, "unassign": Action.ASSIGN, "unassigned": Action.ASSIGN,
    "reassign": Action.ASSIGN,
    # sessions
    "login": Action.SIGN_IN, "log_in": Action.SIGN_IN, "logged_in": Action.SIGN_IN,
    "signin": Action.SIGN_IN, "signed_in": Action.SIGN_IN, "authenticate": Action.SIGN_IN,
    "authenticated": Action.SIGN_IN, "auth_success": Action.SIGN_IN,
    "logout": Action.SIGN_OUT, "log_out": Action.SIGN_OUT, "logged_out": Action.SIGN_OUT,
    "signout": Action.SIGN_OUT, "signed_out": Action.SIGN_OUT,
    "login_failed": Action.SIGN_IN_FAILED, "failed_login": Action.SIGN_IN_FAILED,
    "signin_failed": Action.SIGN_IN_FAILED, "auth_failure": Action.SIGN_IN_FAILED,
    "authentication_failed": Action.SIGN_IN_FAILED, "login_failure": Action.SIGN_IN_FAILED,
    # data access
    "exported": Action.EXPORT, "download": Action.EXPORT, "downloaded": Action.EXPORT,
    "read": Action.ACCESS, "view": Action.ACCESS, "viewed": Action.ACCESS,
    "accessed": Action.ACCESS, "open": Action.ACCESS, "opened": Action.ACCESS,
    # rights
    "permission_changed": Action.PERMISSION_CHANGE, "grant": Action.PERMISSION_CHANGE,
    "granted": Action.PERMISSION_CHANGE, "revoke": Action.PERMISSION_CHANGE,
    "revoked": Action.PERMISSION_CHANGE, "share": Action.PERMISSION_CHANGE,
    "shared": Action.PERMISSION_CHANGE, "unshare": Action.PERMISSION_CHANGE,
    "role_changed": Action.ROLE_CHANGE, "promote": Action.ROLE_CHANGE,
    "promoted": Action.ROLE_CHANGE, "demote": Action.ROLE_CHANGE, "demoted": Action.ROLE_CHANGE,
    "invited": Action.INVITE, "invitation": Action.INVITE, "invitation_sent": Action.INVITE,
    "settings_changed": Action.SETTINGS_CHANGE, "configure": Action.SETTINGS_CHANGE,
    "configured": Action.SETTINGS_CHANGE, "setting_change": Action.SETTINGS_CHANGE,
    "integration_connected": Action.INTEGRATION_CONNECT, "connect": Action.INTEGRATION_CONNECT,
    "connected": Action.INTEGRATION_CONNECT, "install": Action.INTEGRATION_CONNECT,
    "installed": Action.INTEGRATION_CONNECT,
    "integration_disconnected": Action.INTEGRATION_DISCONNECT,
    "disconnect": Action.INTEGRATION_DISCONNECT, "disconnected": Action.INTEGRATION_DISCONNECT,
    "uninstall": Action.INTEGRATION_DISCONNECT, "uninstalled": Action.INTEGRATION_DISCONNECT,
}  # fmt: skip


def canonical_action(verb: str) -> Action | None:
    """The standard verb for ``verb`` ("Deleted", "log-in", "LOGIN" ...), or None if unknown."""
    key = verb.strip().lower().replace("-", "_").replace(" ", "_").replace(".", "_")
    try:
        return Action(key)
    except ValueError:
        return _SYNONYMS.get(key)


ACTION_GROUPS: dict[str, frozenset[Action]] = {
    "update": frozenset({Action.UPDATE, Action.STATUS_CHANGE, Action.COMMENT, Action.ASSIGN}),
    "session": frozenset({Action.SIGN_IN, Action.SIGN_OUT, Action.SIGN_IN_FAILED}),
    "access_control": frozenset({Action.PERMISSION_CHANGE, Action.ROLE_CHANGE, Action.INVITE}),
    "integration": frozenset({Action.INTEGRATION_CONNECT, Action.INTEGRATION_DISCONNECT}),
}
"""Filter groups as the products show them: filtering on ``update`` finds status changes,
comments and assignments too (``api/query.py``)."""

MODIFYING_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.CREATE,
        Action.UPDATE,
        Action.DELETE,
        Action.RESTORE,
        Action.STATUS_CHANGE,
        Action.COMMENT,
        Action.ASSIGN,
    }
)
"""Actions that change an entity (the "most modified entity types" metric)."""


def expand_action(name: str, exact: bool = False) -> frozenset[Action]:
    """The actions a filter value stands for: a group's members, or one canonical action
    (synonyms accepted). Raises ``ValueError`` for an unknown name."""
    key = name.strip().lower()
    if not exact and key in ACTION_GROUPS:
        return ACTION_GROUPS[key]
    action = canonical_action(key)
    if action is None:
        known = ", ".join([*(a.value for a in Action), *(f"{g} (group)" for g in ACTION_GROUPS)])
        raise ValueError(f"unknown action {name!r}; use one of: {known}")
    return frozenset({action})
