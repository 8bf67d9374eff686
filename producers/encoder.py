"""Event fields (or an ``AuditEvent``) -> the key and bytes to send, or ``InvalidEvent``.

Two routes, one result: the fast path (``fastpath.py``) for the plain common case, pydantic
for everything else. Both end in the same JSON document, the privacy policy, one serializer
and the size limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from auditstream.producers.config import ProducerConfig
from auditstream.producers.errors import EventTooLarge, InvalidEvent
from auditstream.producers.fastpath import fast_document, format_ms
from auditstream.producers.ids import new_id
from auditstream.producers.privacy import Privacy
from auditstream.schemas.event import AuditEvent, partition_key

# Types whose JSON form could differ from pydantic's are refused, so the fast path falls back.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_STRICT |= orjson.OPT_PASSTHROUGH_SUBCLASS


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event ready for Kafka."""

    event_id: str
    key: bytes
    value: bytes


class EventEncoder:
    def __init__(self, config: ProducerConfig) -> None:
        self._max_bytes = config.max_event_bytes
        self._privacy = Privacy.from_config(config)
        self._fast = config.fast_path

    def from_fields(self, fields: dict[str, Any]) -> Prepared:
        """Validate keyword fields; ``occurred_at`` defaults to now, ``event_id`` to a UUIDv7."""
        event_id, now_ms = new_id()
        if self._fast:
            doc = fast_document(fields, now_ms, event_id)
            if doc is not None:
                try:
                    return self._finish(doc, orjson.dumps(self._private(doc), option=_STRICT))
                except TypeError:  # a value orjson would write unlike pydantic: slow route
                    pass
        if "occurred_at" not in fields:
            fields = {**fields, "occurred_at": format_ms(now_ms)}
        try:
            event = AuditEvent(**fields)
        except ValidationError as exc:
            raise InvalidEvent.from_validation(exc) from None
        except OSError as exc:  # the schema's zone lookup on an absurd name (e.g. too long)
            raise InvalidEvent.one("actor.timezone", f"not an IANA time zone: {exc}") from None
        return self.from_event(event)

    def from_event(self, event: AuditEvent) -> Prepared:
        """An already validated event."""
        try:
            doc = self._private(event.model_dump(mode="json", exclude_none=True))
        except PydanticSerializationError as exc:
            raise InvalidEvent.one("event", f"a value can't be written as JSON: {exc}") from None
        try:
            value = orjson.dumps(doc)
        except TypeError:  # e.g. a non-string key inside a value: pydantic's serializer writes it
            value = to_json(doc)
        return self._finish(doc, value)

    def _private(self, doc: dict[str, Any]) -> dict[str, Any]:
        return doc if self._privacy is None else self._privacy.apply(doc)

    def _finish(self, doc: dict[str, Any], value: bytes) -> Prepared:
        if len(value) > self._max_bytes:
            raise EventTooLarge.one(
                "event",
                f"{len(value)} bytes is over the {self._max_bytes}-byte limit "
                "(max_event_bytes): move bulky data out of metadata and changes",
            )
        tenant, actor = doc["tenant_id"], doc["actor"]["id"]
        if ":" in tenant or "\\" in tenant or ":" in actor or "\\" in actor:
            key = partition_key(tenant, actor)
        else:
            key = f"{tenant}:{actor}".encode()
        return Prepared(doc["event_id"], key, value)
