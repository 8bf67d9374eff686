"""Decode a *normalized* event without validating it a second time.

The normalizer validated every event on the normalized topic and wrote it in canonical form
(``schemas/codec.encode``: UTC millisecond timestamps, canonical verbs, no nulls). The
detector agents read each of them again, and re-running pydantic validation there (about
30 us an event, mostly its Python validators) cost as much as the normalizer's own.
``decode`` builds the same ``AuditEvent`` (equal, with the same fields set) in about a third
of that: it converts only what JSON cannot carry (ids, times, enums) and assembles the
models the way pydantic's ``model_construct`` does, without its per-call overhead.

What is not in canonical form (not JSON, a missing or unknown field, an unknown enum value,
a timestamp not in UTC or outside the store's range, an identifier with a character the
schema refuses, a number the JSON reader may have rounded, values nested too deep) raises
``NotCanonical``; callers then fall back to full validation, which says what is wrong.
``tests/unit/test_trusted_decode.py`` checks that both agree.

orjson reads integers beyond 64 bits as floats; the normalizer never writes one (the schema
refuses them), so a float here that is integral and at least 2**63 in size may be such an
integer: it goes to full validation, whose reader keeps it exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from auditstream.schemas.actions import Action
from auditstream.schemas.event import (
    EARLIEST,
    LATEST,
    Actor,
    ActorType,
    AuditEvent,
    Channel,
    FieldChange,
    Location,
    Outcome,
    Resource,
)
from auditstream.schemas.values import MAX_VALUE_DEPTH, identifier_problem

M = TypeVar("M", bound=BaseModel)


class NotCanonical(ValueError):
    """Not an event in the normalizer's canonical form."""


class _Builder(Generic[M]):
    """``cls.model_construct(**given)``, for a model without private attributes."""

    def __init__(self, cls: type[M]) -> None:
        if cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
            raise TypeError(f"{cls.__name__}: only plain models can be built this way")
        self._cls = cls
        self._fields: list[tuple[str, Any, Callable[[], Any] | None]] = [
            (name, info.default, info.default_factory)  # type: ignore[misc]
            for name, info in cls.model_fields.items()
        ]
        self._names = frozenset(cls.model_fields)

    def __call__(self, given: dict[str, Any]) -> M:
        if not self._names.issuperset(given):
            unknown = sorted(set(given) - self._names)
            raise NotCanonical(f"{self._cls.__name__}: unknown fields {unknown}")
        values: dict[str, Any] = {}
        for name, default, factory in self._fields:
            if name in given:
                values[name] = given[name]
            elif factory is not None:
                values[name] = factory()
            elif default is PydanticUndefined:
                raise NotCanonical(f"{self._cls.__name__}.{name} is missing")
            else:
                values[name] = default
        model = self._cls.__new__(self._cls)
        object.__setattr__(model, "__dict__", values)
        object.__setattr__(model, "__pydantic_fields_set__", set(given))
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model


_event = _Builder(AuditEvent)
_actor = _Builder(Actor)
_resource = _Builder(Resource)
_location = _Builder(Location)
_change = _Builder(FieldChange)


def decode(value: bytes) -> AuditEvent:
    try:
        doc = orjson.loads(value)
        if doc.get("schema_version", 1) != 1:
            raise NotCanonical("unknown schema version")
        actor, resource = doc["actor"], doc["resource"]
        ids = (
            doc["tenant_id"],
            actor["id"],
            resource["type"],
            resource["id"],
            doc.get("session_id", ""),
            doc.get("correlation_id", ""),
        )
        if not "".join(ids).isprintable():  # one C call; the details only when it fails
            _check_ids(doc, "tenant_id", "session_id", "correlation_id")
            _check_ids(actor, "id")
            _check_ids(resource, "type", "id")
        doc["event_id"] = uuid.UUID(doc["event_id"])
        doc["occurred_at"] = _utc(doc["occurred_at"])
        if "received_at" in doc:
            doc["received_at"] = _utc(doc["received_at"])
        doc["action"] = Action(doc["action"])
        if "outcome" in doc:
            doc["outcome"] = Outcome(doc["outcome"])
        if "channel" in doc:
            doc["channel"] = Channel(doc["channel"])
        if "parent_event_id" in doc:
            doc["parent_event_id"] = uuid.UUID(doc["parent_event_id"])
        if "type" in actor:
            actor["type"] = ActorType(actor["type"])
        doc["actor"] = _actor(actor)
        doc["resource"] = _resource(resource)
        if "location" in doc:
            doc["location"] = _location(doc["location"])
        if "changes" in doc:
            for change in doc["changes"]:
                if not change["field"].isprintable():
                    _check_ids(change, "field")
                _exact(change.get("old"), 0)
                _exact(change.get("new"), 0)
            doc["changes"] = [_change(c) for c in doc["changes"]]
        if doc.get("metadata"):
            _exact(doc["metadata"], 0)
        return _event(doc)
    except NotCanonical:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise NotCanonical(f"{type(exc).__name__}: {exc}") from exc


def _utc(value: str) -> datetime:
    if not value.endswith("Z"):
        raise NotCanonical(f"{value!r} is not a canonical UTC timestamp")
    stamp = datetime.fromisoformat(value)
    if not EARLIEST <= stamp < LATEST:
        raise NotCanonical(f"{value!r} is outside the store's range")
    return stamp


def _check_ids(doc: dict[str, Any], *names: str) -> None:
    for name in names:
        value = doc.get(name)
        problem = identifier_problem(value) if type(value) is str else None
        if problem is not None:
            raise NotCanonical(f"{name}: {problem}")


_ROUNDED = float(2**63)


def _exact(value: Any, depth: int) -> None:
    """Refuse what full validation judges differently: maybe-rounded integers, deep nesting."""
    kind = type(value)
    if kind is float:
        if abs(value) >= _ROUNDED and value.is_integer():
            raise NotCanonical(f"{value!r} may be an integer beyond 64 bits, read as a float")
    elif kind is dict or kind is list:
        if depth >= MAX_VALUE_DEPTH:
            raise NotCanonical(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        for item in value.values() if kind is dict else value:
            inner = type(item)
            if inner is not str and inner is not int and inner is not bool and item is not None:
                _exact(item, depth + 1)  # orjson's ints are within 64 bits: only floats can lie
