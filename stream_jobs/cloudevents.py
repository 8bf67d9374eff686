"""CloudEvents over Kafka (spec v1.0, Kafka protocol binding) -> the event document we validate.

Two modes reach the raw topic:

* **binary**: the attributes travel in ``ce_*`` headers (``ce_specversion``, ``ce_id``,
  ``ce_source``, ``ce_type``, ``ce_time`` ...), the value is the data: our event JSON;
* **structured**: the value is one JSON object with the attributes and ``data`` (or
  ``data_base64``); its ``content-type`` header is ``application/cloudevents+json``.

The data is an audit event as in ``schemas/audit_event.v1.schema.json``. Attributes fill
what the data leaves out, never override it:

=====================  =====================================================================
``id`` + ``source``     ``event_id``: the id itself when it is a UUID, else a UUIDv5 of the
                        tenant, ``source`` and ``id`` (see below)
``time``                ``occurred_at``
``type``                ``action``: its last dot-separated part (``com.acme.invoice.deleted``
                        -> ``deleted`` -> ``delete``)
``tenantid`` (ext.)     ``tenant_id``
``source``, ``type``    ``metadata.ce_source``, ``metadata.ce_type`` (provenance)
=====================  =====================================================================

**Event ids.** The spec makes ``source`` + ``id`` unique per producer, not across tenants,
and a UUIDv5 is predictable: were it made of ``source`` and ``id`` alone, one tenant could
send another's next id first. So the tenant is part of the name hashed::

    event_id = uuid5(NAMESPACE, tenant_id + "\\n" + source + "\\n" + id)  # "\\n": a line feed

with ``tenant_id`` as the event will carry it (the data's, else the ``tenantid`` extension;
stripped, as the schema strips it) and ``NAMESPACE`` = ``6f1c2a3e-8d4b-5b7a-9c0d-2e4f6a8b0c1d``.
A tenant id has no control characters and a URI-reference ``source`` no raw line breaks, so
distinct triples never share a name. A resent CloudEvent keeps its event id, so it is a
repeat; the same ``id`` from two tenants gives two ids. A UUID ``id`` is taken as it is, like
an ``event_id`` a producer sets: identity in the pipeline is (tenant_id, event_id), so
another tenant sending the same UUID sends another event.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import from_json

HeaderItems = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]

STRUCTURED_TYPE = "application/cloudevents"
REQUIRED = ("id", "source", "type")
NAMESPACE = uuid.UUID("6f1c2a3e-8d4b-5b7a-9c0d-2e4f6a8b0c1d")


class CloudEventError(ValueError):
    """A CloudEvent the pipeline can't take; the message names the attribute."""


def header_map(headers: HeaderItems | None) -> dict[str, str]:
    """Kafka headers as ``{lowercase name: text}``; a repeated header: the last one wins."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        if value is None:
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        out[name.lower()] = text
    return out


def is_cloudevent(document: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    return "ce_specversion" in headers or "specversion" in document


def to_event_document(document: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """The audit event document carried by a CloudEvent (binary or structured)."""
    if "ce_specversion" in headers:
        attributes = {k.removeprefix("ce_"): v for k, v in headers.items() if k.startswith("ce_")}
        data: Any = document
    else:
        attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
        data = _structured_data(document)
    version = attributes.get("specversion")
    if version != "1.0":
        raise CloudEventError(f"specversion {version!r} is not supported; send 1.0")
    for name in REQUIRED:
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            raise CloudEventError(f"CloudEvent attribute {name!r} is required")
    if not isinstance(data, dict):
        raise CloudEventError("CloudEvent data must be an audit event (a JSON object)")
    return _merge(dict(data), attributes)


def _structured_data(document: Mapping[str, Any]) -> Any:
    if "data_base64" in document:
        try:
            raw = base64.b64decode(document["data_base64"], validate=True)
            return from_json(raw, allow_inf_nan=False)  # integers kept exact, as in normalize
        except (binascii.Error, TypeError, ValueError) as exc:
            raise CloudEventError(f"data_base64 is not base64 of a JSON object: {exc}") from None
    if "data" not in document:
        raise CloudEventError("structured CloudEvent without data")
    data = document["data"]
    if isinstance(data, str):  # data as a JSON string (some SDKs do this)
        try:
            return from_json(data, allow_inf_nan=False)
        except ValueError as exc:
            raise CloudEventError(f"data is a string but not JSON: {exc}") from None
    return data


def _merge(event: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    ce_id, source, kind = attributes["id"], attributes["source"], attributes["type"]
    if "tenant_id" not in event and attributes.get("tenantid"):
        event["tenant_id"] = attributes["tenantid"]
    if "event_id" not in event:
        tenant = event.get("tenant_id")
        # Not a string: the schema refuses the event, whatever its id.
        tenant = tenant.strip() if isinstance(tenant, str) else ""
        event["event_id"] = str(event_id(tenant, source, ce_id))
    if "occurred_at" not in event and attributes.get("time"):
        event["occurred_at"] = attributes["time"]
    if "action" not in event:
        event["action"] = kind.rsplit(".", 1)[-1]
    metadata = event.get("metadata")
    if metadata is None:
        metadata = event["metadata"] = {}
    if isinstance(metadata, dict):
        metadata.setdefault("ce_source", source)
        metadata.setdefault("ce_type", kind)
    return event


def event_id(tenant_id: str, source: str, ce_id: str) -> uuid.UUID:
    """The event id of a CloudEvent: ``ce_id`` if it is a UUID, else a UUIDv5 (see above)."""
    try:
        return uuid.UUID(ce_id)
    except ValueError:
        return uuid.uuid5(NAMESPACE, f"{tenant_id}\n{source}\n{ce_id}")
