"""CloudEvents -> event ids: the tenant is part of the identity (issue 9, item 10)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from auditstream.stream_jobs import cloudevents
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import Duplicate, Invalid, Normalized, Normalizer, Reason

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DATA = {"actor": {"id": "u"}, "resource": {"type": "order", "id": "o-1"}}


def step() -> Normalizer:
    return Normalizer(65_536, RecentIds(60, 100), now=lambda: NOW)


def binary(tenant: str, ce_id: str = "order-1", source: str = "/shop") -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", b"com.shop.order.created"),
        ("ce_time", b"2026-12-02T11:00:00Z"),
        ("ce_tenantid", tenant.encode()),
    ]


def test_the_same_id_from_two_tenants_gives_two_events() -> None:
    normalize = step()
    evil = normalize(orjson.dumps(DATA), binary("evil"))
    acme = normalize(orjson.dumps(DATA), binary("acme"))
    assert isinstance(evil, Normalized)
    assert isinstance(acme, Normalized), "another tenant's CloudEvent must not suppress it"
    assert evil.event.event_id != acme.event.event_id
    assert (evil.event.tenant_id, acme.event.tenant_id) == ("evil", "acme")


def test_a_resent_cloudevent_is_a_repeat_of_its_tenant() -> None:
    normalize = step()
    first = normalize(orjson.dumps(DATA), binary("acme"))
    assert isinstance(first, Normalized)
    again = normalize(orjson.dumps(DATA), binary("acme"))
    assert again == Duplicate(str(first.event.event_id), "acme")


def test_the_mapping_is_the_documented_uuid5() -> None:
    outcome = step()(orjson.dumps(DATA), binary("acme"))
    assert isinstance(outcome, Normalized)
    name = "acme\n/shop\norder-1"
    assert outcome.event.event_id == uuid.uuid5(cloudevents.NAMESPACE, name)
    assert uuid.UUID("6f1c2a3e-8d4b-5b7a-9c0d-2e4f6a8b0c1d") == cloudevents.NAMESPACE
    assert cloudevents.event_id("acme", "/shop", "order-1") == outcome.event.event_id


def test_the_tenant_is_the_one_the_event_carries() -> None:
    """From the data or the extension, stripped as the schema strips it: one id."""
    from_extension = step()(orjson.dumps(DATA), binary(" acme "))
    in_data = {**DATA, "tenant_id": "acme"}
    from_data = step()(orjson.dumps(in_data), binary("ignored: the data wins"))
    assert isinstance(from_extension, Normalized)
    assert isinstance(from_data, Normalized)
    assert from_extension.event.event_id == from_data.event.event_id
    assert from_data.event.tenant_id == "acme"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("acme", "/shop", "1"), ("acme", "/shop2", "1")),
        (("acme", "/shop", "1"), ("acme", "/shop", "2")),
        (("acme", "/shop", "1"), ("acme2", "/shop", "1")),
    ],
)
def test_distinct_triples_give_distinct_ids(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    assert cloudevents.event_id(*a) != cloudevents.event_id(*b)


def test_a_tenant_id_that_could_forge_a_name_is_refused() -> None:
    # ("a\nb", "c", "d") and ("a", "b\nc", "d") share a name; such a tenant id is refused
    outcome = step()(orjson.dumps(DATA), binary("a\nb"))
    assert isinstance(outcome, Invalid)
    assert outcome.detail.startswith("tenant_id: U+000A (LINE FEED) at position 1")


def test_a_uuid_id_is_kept_and_its_identity_is_per_tenant() -> None:
    shared = str(uuid.uuid4())
    normalize = step()
    evil = normalize(orjson.dumps(DATA), binary("evil", ce_id=shared))
    acme = normalize(orjson.dumps(DATA), binary("acme", ce_id=shared))
    assert isinstance(evil, Normalized)
    assert isinstance(acme, Normalized)
    assert str(acme.event.event_id) == shared


def test_structured_data_keeps_integers_exact_or_refuses_them() -> None:
    def structured(data: dict[str, object]) -> bytes:
        return orjson.dumps(
            {
                "specversion": "1.0", "id": "x", "source": "/s", "type": "a.created",
                "tenantid": "acme", "time": "2026-12-02T11:00:00Z",
                "data_base64": base64.b64encode(json.dumps(data).encode()).decode(),
            }
        )  # fmt: skip

    kept = step()(structured({**DATA, "metadata": {"n": 2**64 - 1}}))
    assert isinstance(kept, Normalized)
    assert kept.event.metadata["n"] == 2**64 - 1
    refused = step()(structured({**DATA, "metadata": {"n": 2**64}}))
    assert isinstance(refused, Invalid)
    assert refused.reason is Reason.INVALID_EVENT
    assert "metadata: integer 18446744073709551616 is outside" in refused.detail
