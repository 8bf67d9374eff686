"""One-line calls for the common events, shared by the sync and async producers."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping
from typing import Any, Generic, TypeVar

from auditstream.producers.diff import as_mapping, field_changes
from auditstream.schemas.event import AuditEvent

R = TypeVar("R")


def _actor(actor: str | Mapping[str, Any]) -> Any:
    return {"id": actor} if isinstance(actor, str) else actor


def _resource(resource: tuple[str, str] | Mapping[str, Any]) -> Any:
    if isinstance(resource, tuple):
        kind, ident = resource
        return {"type": kind, "id": ident}
    return resource


class EventHelpers(Generic[R]):
    """``sign_in``, ``sign_in_failed``, ``sign_out`` and ``record_change`` on top of ``emit``.

    ``actor`` is an id or an actor dict; ``resource`` a ``(type, id)`` pair or a resource
    dict; any other keyword is an event field (``ip``, ``metadata``, ``session_id`` ...).
    """

    @abstractmethod
    def emit(self, event: AuditEvent | None = None, /, **fields: Any) -> R: ...

    def sign_in(
        self, tenant_id: str, actor: str | Mapping[str, Any], session_id: str, **fields: Any
    ) -> R:
        return self._session("sign_in", "success", tenant_id, actor, session_id, fields)

    def sign_in_failed(
        self,
        tenant_id: str,
        actor: str | Mapping[str, Any],
        reason: str | None = None,
        **fields: Any,
    ) -> R:
        """A failed sign-in; ``reason`` goes to ``metadata.reason`` (never pass the password)."""
        if reason is not None:
            fields["metadata"] = {**fields.get("metadata", {}), "reason": reason}
        fields.setdefault("resource", {"type": "session", "id": "-"})
        return self._session("sign_in_failed", "failure", tenant_id, actor, None, fields)

    def sign_out(
        self, tenant_id: str, actor: str | Mapping[str, Any], session_id: str, **fields: Any
    ) -> R:
        return self._session("sign_out", "success", tenant_id, actor, session_id, fields)

    def _session(
        self,
        action: str,
        outcome: str,
        tenant_id: str,
        actor: str | Mapping[str, Any],
        session_id: str | None,
        fields: dict[str, Any],
    ) -> R:
        if session_id is not None:
            fields["session_id"] = session_id
            fields.setdefault("resource", {"type": "session", "id": session_id})
        fields.setdefault("outcome", outcome)
        return self.emit(tenant_id=tenant_id, actor=_actor(actor), action=action, **fields)

    def record_change(
        self,
        tenant_id: str,
        actor: str | Mapping[str, Any],
        resource: tuple[str, str] | Mapping[str, Any],
        before: Any,
        after: Any,
        *,
        ignore: Collection[str] = (),
        action: str | None = None,
        **fields: Any,
    ) -> R:
        """Record a change of ``resource`` from ``before`` to ``after`` (dicts, pydantic models
        or dataclasses), with the field-level diff computed here.

        The action defaults to ``create`` (``before`` is None), ``delete`` (``after`` is None)
        or ``update``. An update that changed nothing is still recorded, with no changes.
        """
        if action is None:
            action = "create" if before is None else "delete" if after is None else "update"
        changes = field_changes(as_mapping(before), as_mapping(after), ignore)
        return self.emit(
            tenant_id=tenant_id,
            actor=_actor(actor),
            action=action,
            resource=_resource(resource),
            changes=changes,
            **fields,
        )
