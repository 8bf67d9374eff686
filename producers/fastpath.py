"""Validate the common event without pydantic, with exactly the model's rules.

``fast_document(fields)`` returns the event as the JSON-ready dict that
``AuditEvent(**fields).model_dump(mode="json", exclude_none=True)`` would give, or ``None``
when the input is anything but the plain common case: exact ``str`` / ``dict`` / ``list`` /
``datetime`` / ``uuid.UUID`` values, known keys, values the model accepts. It never refuses an
event itself: ``None`` sends the input through pydantic, which accepts it or names the problem.
So the two routes can only differ if this module accepts something the model would not, or
normalizes it differently; ``tests/unit/test_producer_fastpath.py`` checks both over many
generated valid and invalid inputs.

Any values (change values, metadata) are checked by the model's own rule (``schemas/values``:
64-bit integers, finite numbers, bounded nesting); their types are left to the encoder, which
serializes them with orjson in a strict mode that refuses every type whose JSON form could
differ from pydantic's, and falls back to pydantic then. Identifiers are checked by the
model's character rule too (``identifier_problem``).
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime
from typing import Any

from auditstream.schemas.actions import Action, canonical_action
from auditstream.schemas.event import (
    EARLIEST,
    LATEST,
    MAX_CHANGES,
    MAX_ID_CHARS,
    MAX_METADATA_KEYS,
    MAX_NAME_CHARS,
    MAX_USER_AGENT_CHARS,
    ActorType,
    Channel,
    Outcome,
    _known_zone,
)
from auditstream.schemas.values import identifier_problem, json_value_problem

EVENT_KEYS = frozenset(
    [
        "schema_version",
        "event_id",
        "occurred_at",
        "received_at",
        "tenant_id",
        "actor",
        "action",
        "resource",
        "outcome",
        "ip",
        "session_id",
        "user_agent",
        "channel",
        "location",
        "changes",
        "correlation_id",
        "parent_event_id",
        "metadata",
    ]
)
ACTOR_KEYS = frozenset({"id", "type", "display_name", "email", "timezone"})
RESOURCE_KEYS = frozenset({"type", "id", "name"})
LOCATION_KEYS = frozenset({"country", "region", "city", "latitude", "longitude"})
CHANGE_KEYS = frozenset({"field", "old", "new"})

_ACTOR_TYPES = {t.value for t in ActorType}
_OUTCOMES = {o.value for o in Outcome}
_CHANNELS = {c.value for c in Channel}
_MAX_CACHE = 4096

_actions: dict[str, str] = {}
_ips: dict[str, str | None] = {}
_second_prefix: dict[int, str] = {}


class _NotFast(Exception):
    """The input needs the full model (it may still be valid)."""


def _identifier(value: object, limit: int = MAX_ID_CHARS) -> str:
    if type(value) is not str:
        raise _NotFast
    value = value.strip()
    if not 0 < len(value) <= limit or (
        not value.isprintable() and identifier_problem(value) is not None
    ):
        raise _NotFast
    return value


def _optional_identifier(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _NotFast
    value = value.strip()
    if len(value) > MAX_ID_CHARS or (
        not value.isprintable() and identifier_problem(value) is not None
    ):
        raise _NotFast
    return value


def _json_value(value: object) -> None:
    if json_value_problem(value) is not None:
        raise _NotFast


def _truncated(value: object, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _NotFast
    value = value.strip()
    if len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def _choice(value: object, allowed: set[str], enum: type[Any]) -> str:
    if type(value) is not str and type(value) is not enum:
        raise _NotFast
    text = str.lower(str.strip(value))  # type: ignore[arg-type]
    if text not in allowed:
        raise _NotFast
    return text


def _action(value: object) -> str:
    if type(value) is Action:
        return str(value.value)
    if type(value) is not str:
        raise _NotFast
    found = _actions.get(value)
    if found is None:
        action = canonical_action(value)
        if action is None:
            raise _NotFast
        found = action.value
        if len(_actions) < _MAX_CACHE:
            _actions[value] = found
    return found


def _ip(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _NotFast
    if value in _ips:
        return _ips[value]
    if value == "":
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise _NotFast from None
    mapped = getattr(address, "ipv4_mapped", None)
    text = str(mapped if mapped is not None else address)
    if len(_ips) < _MAX_CACHE:
        _ips[value] = text
    return text


def _zone(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _NotFast
    value = value.strip()
    if not value:
        return None
    try:
        known = _known_zone(value)
    except OSError:  # e.g. a name too long for a file name: the model decides
        raise _NotFast from None
    if not known:
        raise _NotFast
    return value


def timestamp(value: object) -> str:
    """``...T01:02:03.456Z`` for a datetime, as the model would store and serialize it."""
    if type(value) is not datetime:
        raise _NotFast
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise _NotFast
    delta = value - EARLIEST  # exact integer arithmetic, unlike .timestamp()
    return format_ms(delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000)


def format_ms(ms: int) -> str:
    """Unix milliseconds as ``2026-11-22T01:41:39.123Z`` (cached per second)."""
    second, milli = divmod(ms, 1000)
    prefix = _second_prefix.get(second)
    if prefix is None:
        if len(_second_prefix) >= _MAX_CACHE:
            _second_prefix.clear()
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second_prefix[second] = prefix
    return f"{prefix}{milli:03d}Z"


def _uuid(value: object) -> str:
    if type(value) is not uuid.UUID:
        raise _NotFast
    return str(value)


def _actor(value: object) -> dict[str, Any]:
    if type(value) is not dict or not value.keys() <= ACTOR_KEYS:
        raise _NotFast
    out: dict[str, Any] = {"id": _identifier(value.get("id"))}
    out["type"] = _choice(value.get("type", "member"), _ACTOR_TYPES, ActorType)
    name = _truncated(value.get("display_name"), MAX_NAME_CHARS)
    if name is not None:
        out["display_name"] = name
    email = _truncated(value.get("email"), 320)
    if email is not None:
        out["email"] = email
    zone = _zone(value.get("timezone"))
    if zone is not None:
        out["timezone"] = zone
    return out


def _resource(value: object) -> dict[str, Any]:
    if type(value) is not dict or not value.keys() <= RESOURCE_KEYS:
        raise _NotFast
    kind = value.get("type")
    if type(kind) is not str:
        raise _NotFast
    kind = kind.strip().lower()
    if not 0 < len(kind) <= 128 or (not kind.isprintable() and identifier_problem(kind)):
        raise _NotFast
    out: dict[str, Any] = {"type": kind, "id": _identifier(value.get("id"))}
    name = _truncated(value.get("name"), MAX_NAME_CHARS)
    if name is not None:
        out["name"] = name
    return out


def _coordinate(value: object, limit: float) -> float | None:
    if value is None:
        return None
    if type(value) is not float and type(value) is not int:
        raise _NotFast
    number = float(value)
    if not -limit <= number <= limit:  # also refuses NaN
        raise _NotFast
    return number


def _location(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict or not value.keys() <= LOCATION_KEYS:
        raise _NotFast
    out: dict[str, Any] = {}
    country = value.get("country")
    if country is not None:
        if type(country) is not str:
            raise _NotFast
        country = country.strip()
        if country:
            if not (len(country) == 2 and country.isascii() and country.isalpha()):
                raise _NotFast
            out["country"] = country.upper()
    for name in ("region", "city"):
        text = _truncated(value.get(name), MAX_NAME_CHARS)
        if text is not None:
            out[name] = text
    latitude = _coordinate(value.get("latitude"), 90)
    if latitude is not None:
        out["latitude"] = latitude
    longitude = _coordinate(value.get("longitude"), 180)
    if longitude is not None:
        out["longitude"] = longitude
    return out


def _changes(value: object) -> list[dict[str, Any]]:
    if type(value) is not list or len(value) > MAX_CHANGES:
        raise _NotFast
    out = []
    for change in value:
        if type(change) is not dict or not change.keys() <= CHANGE_KEYS:
            raise _NotFast
        item: dict[str, Any] = {"field": _identifier(change.get("field"), 256)}
        old = change.get("old")
        if old is not None:
            _json_value(old)
            item["old"] = old
        new = change.get("new")
        if new is not None:
            _json_value(new)
            item["new"] = new
        out.append(item)
    return out


def fast_document(fields: dict[str, Any], now_ms: int, event_id: str) -> dict[str, Any] | None:
    """The model's JSON-ready dict for ``fields``, or None to let pydantic decide.

    ``event_id`` and ``now_ms`` are used when the fields carry none (``occurred_at``
    defaults to now, as in ``AuditProducer.emit``).
    """
    try:
        return _document(fields, now_ms, event_id)
    except _NotFast:
        return None


def _document(fields: dict[str, Any], now_ms: int, event_id: str) -> dict[str, Any]:
    if not fields.keys() <= EVENT_KEYS:
        raise _NotFast
    get = fields.get
    version = get("schema_version", 1)
    if type(version) is not int or version != 1:
        raise _NotFast
    if get("received_at") is not None:
        raise _NotFast
    given_id = get("event_id")
    occurred = get("occurred_at")
    doc: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id if given_id is None else _uuid(given_id),
        "occurred_at": format_ms(now_ms) if occurred is None else timestamp(occurred),
        "tenant_id": _identifier(get("tenant_id")),
        "actor": _actor(get("actor")),
        "action": _action(get("action")),
        "resource": _resource(get("resource")),
        "outcome": _choice(get("outcome", "success"), _OUTCOMES, Outcome),
    }
    if "event_id" in fields and given_id is None:
        raise _NotFast  # an explicit None: the model refuses it
    if "occurred_at" in fields and occurred is None:
        raise _NotFast
    ip = _ip(get("ip"))
    if ip is not None:
        doc["ip"] = ip
    session = _optional_identifier(get("session_id"))
    if session is not None:
        doc["session_id"] = session
    agent = _truncated(get("user_agent"), MAX_USER_AGENT_CHARS)
    if agent is not None:
        doc["user_agent"] = agent
    doc["channel"] = _choice(get("channel", "other"), _CHANNELS, Channel)
    location = _location(get("location"))
    if location is not None:
        doc["location"] = location
    changes = get("changes")
    doc["changes"] = [] if changes is None and "changes" not in fields else _changes(changes)
    correlation = _optional_identifier(get("correlation_id"))
    if correlation is not None:
        doc["correlation_id"] = correlation
    parent = get("parent_event_id")
    if parent is not None:
        doc["parent_event_id"] = _uuid(parent)
    metadata = get("metadata")
    if metadata is None:
        if "metadata" in fields:
            raise _NotFast
        metadata = {}
    elif (
        type(metadata) is not dict
        or len(metadata) > MAX_METADATA_KEYS
        or any(type(k) is not str for k in metadata)
    ):
        raise _NotFast
    elif metadata:
        _json_value(metadata)
    doc["metadata"] = metadata
    return doc
