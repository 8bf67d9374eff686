"""AuditEvent v1 validation: what the producer SDK and the normalizer accept."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from auditstream.schemas.actions import Action
from auditstream.schemas.codec import describe
from auditstream.schemas.event import (
    MAX_CHANGES,
    MAX_ID_CHARS,
    MAX_METADATA_KEYS,
    MAX_NAME_CHARS,
    MAX_USER_AGENT_CHARS,
    ActorType,
    AuditEvent,
    Channel,
    Outcome,
    format_ts,
    partition_key,
)
from auditstream.schemas.values import MAX_VALUE_DEPTH


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "occurred_at": "2026-03-04T05:06:07.123Z",
        "tenant_id": "acme",
        "actor": {"id": "u-1"},
        "action": "update",
        "resource": {"type": "document", "id": "d-1"},
    }
    base.update(overrides)
    return base


def errors_of(document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        AuditEvent.model_validate(document)
    return describe(info.value)


def test_minimal_event_gets_defaults() -> None:
    event = AuditEvent.model_validate(doc())
    assert event.schema_version == 1
    assert event.event_id.version == 7
    assert event.received_at is None
    assert event.actor.type is ActorType.MEMBER
    assert event.outcome is Outcome.SUCCESS
    assert event.channel is Channel.OTHER
    assert event.changes == []
    assert event.metadata == {}
    assert event.ip is None
    assert event.location is None


def test_default_event_ids_are_unique() -> None:
    ids = {AuditEvent.model_validate(doc()).event_id for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize("field", ["occurred_at", "tenant_id", "actor", "action", "resource"])
def test_missing_required_top_level_field_is_named(field: str) -> None:
    document = doc()
    del document[field]
    assert errors_of(document) == f"{field}: Field required"


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        (doc(actor={}), "actor.id"),
        (doc(resource={"id": "d-1"}), "resource.type"),
        (doc(resource={"type": "document"}), "resource.id"),
        (doc(changes=[{"old": 1, "new": 2}]), "changes.0.field"),
    ],
)
def test_missing_nested_field_is_named(document: dict[str, Any], loc: str) -> None:
    assert errors_of(document) == f"{loc}: Field required"


def test_unknown_action_message_lists_the_standard_verbs() -> None:
    message = errors_of(doc(action="frobnicate"))
    assert message.startswith("action: unknown action 'frobnicate'; use one of: ")
    for action in Action:
        assert action.value in message


@pytest.mark.parametrize(
    ("verb", "expected"),
    [
        ("Deleted", Action.DELETE),
        ("remove", Action.DELETE),
        ("login", Action.SIGN_IN),
        ("log-in", Action.SIGN_IN),
        ("  Sign In ", Action.SIGN_IN),
        ("UPDATE", Action.UPDATE),
        ("status.change", Action.STATUS_CHANGE),
    ],
)
def test_action_synonyms_become_canonical(verb: str, expected: Action) -> None:
    assert AuditEvent.model_validate(doc(action=verb)).action is expected


def test_non_string_action_is_rejected() -> None:
    assert errors_of(doc(action=7)).startswith("action: ")


def test_offset_timestamp_is_converted_to_utc_and_truncated_to_ms() -> None:
    event = AuditEvent.model_validate(doc(occurred_at="2026-03-04T07:06:07.123987+02:00"))
    assert event.occurred_at == datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
    assert event.occurred_at.utcoffset().total_seconds() == 0


def test_negative_offset_crosses_midnight() -> None:
    event = AuditEvent.model_validate(doc(occurred_at="2026-03-04T22:30:00-05:00"))
    assert event.occurred_at == datetime(2026, 3, 5, 3, 30, tzinfo=UTC)


def test_naive_timestamp_is_taken_as_utc() -> None:
    event = AuditEvent.model_validate(doc(occurred_at="2026-03-04T05:06:07.999999"))
    assert event.occurred_at == datetime(2026, 3, 4, 5, 6, 7, 999000, tzinfo=UTC)


def test_received_at_is_normalised_like_occurred_at() -> None:
    event = AuditEvent.model_validate(doc(received_at="2026-03-04T06:00:00.000500+01:00"))
    assert event.received_at == datetime(2026, 3, 4, 5, 0, 0, 0, tzinfo=UTC)


def test_invalid_timestamp_is_named() -> None:
    assert errors_of(doc(occurred_at="yesterday")).startswith("occurred_at: ")


def test_format_ts_is_millisecond_z_form() -> None:
    value = datetime(2026, 11, 22, 1, 41, 39, 123456, tzinfo=UTC)
    assert format_ts(value) == "2026-11-22T01:41:39.123Z"
    assert format_ts(value.replace(microsecond=0)) == "2026-11-22T01:41:39.000Z"


def test_format_ts_pads_the_year_to_four_digits() -> None:
    # ISO 8601 needs a 4-digit year; strftime("%Y") on glibc writes "999"
    assert format_ts(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05.000Z"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::FFFF:C000:0201", "192.0.2.1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("", None),
        (None, None),
    ],
)
def test_ip_is_validated_and_canonical(raw: str | None, expected: str | None) -> None:
    assert AuditEvent.model_validate(doc(ip=raw)).ip == expected


@pytest.mark.parametrize("raw", ["999.1.1.1", "not-an-ip", "192.0.2.1/24", "1.2.3"])
def test_bad_ip_is_rejected_and_named(raw: str) -> None:
    assert errors_of(doc(ip=raw)) == f"ip: {raw!r} is not an IPv4 or IPv6 address"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC"])
def test_iana_time_zone_accepted(zone: str) -> None:
    event = AuditEvent.model_validate(doc(actor={"id": "u", "timezone": zone}))
    assert event.actor.timezone == zone


def test_empty_time_zone_becomes_none() -> None:
    assert AuditEvent.model_validate(doc(actor={"id": "u", "timezone": ""})).actor.timezone is None


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "CEST+2", "../../etc/passwd", "/etc/localtime"]
)
def test_bad_time_zone_rejected(zone: str) -> None:
    message = errors_of(doc(actor={"id": "u", "timezone": zone}))
    assert message.startswith(f"actor.timezone: {zone!r} is not an IANA time zone")


@pytest.mark.parametrize(("raw", "expected"), [("de", "DE"), (" fr ", "FR"), ("Us", "US")])
def test_country_code_is_upper_cased(raw: str, expected: str) -> None:
    event = AuditEvent.model_validate(doc(location={"country": raw}))
    assert event.location is not None
    assert event.location.country == expected


@pytest.mark.parametrize("raw", ["DEU", "D", "1A", "d e"])
def test_bad_country_code_rejected(raw: str) -> None:
    assert errors_of(doc(location={"country": raw})).startswith("location.country: ")


@pytest.mark.parametrize(
    ("location", "loc"),
    [
        ({"latitude": 90.5}, "location.latitude"),
        ({"latitude": -91}, "location.latitude"),
        ({"longitude": 180.01}, "location.longitude"),
        ({"longitude": -181}, "location.longitude"),
    ],
)
def test_coordinates_out_of_range_rejected(location: dict[str, float], loc: str) -> None:
    assert errors_of(doc(location=location)).startswith(f"{loc}: ")


def test_coordinates_on_the_bounds_accepted() -> None:
    event = AuditEvent.model_validate(doc(location={"latitude": -90, "longitude": 180}))
    assert event.location is not None
    assert (event.location.latitude, event.location.longitude) == (-90, 180)


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        (("actor", "display_name"), MAX_NAME_CHARS),
        (("resource", "name"), MAX_NAME_CHARS),
        (("location", "city"), MAX_NAME_CHARS),
        (("actor", "email"), 320),
        (("user_agent",), MAX_USER_AGENT_CHARS),
    ],
)
def test_free_text_is_truncated_with_ellipsis(path: tuple[str, ...], limit: int) -> None:
    document = doc()
    long_text = "x" * (limit + 50)
    exact = "y" * limit
    for text, expected in [(long_text, "x" * (limit - 1) + "…"), (exact, exact)]:
        if len(path) == 1:
            document[path[0]] = text
        else:
            document[path[0]] = {**document.get(path[0], {}), path[1]: text}
        event = AuditEvent.model_validate(document)
        value: Any = event
        for part in path:
            value = getattr(value, part)
        assert value == expected
        assert len(value) == limit


def test_free_text_is_stripped() -> None:
    event = AuditEvent.model_validate(doc(actor={"id": "u", "display_name": "  Ann  "}))
    assert event.actor.display_name == "Ann"


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        (doc(tenant_id="t" * (MAX_ID_CHARS + 1)), "tenant_id"),
        (doc(actor={"id": "a" * (MAX_ID_CHARS + 1)}), "actor.id"),
        (doc(resource={"type": "doc", "id": "r" * (MAX_ID_CHARS + 1)}), "resource.id"),
        (doc(session_id="s" * (MAX_ID_CHARS + 1)), "session_id"),
        (doc(correlation_id="c" * (MAX_ID_CHARS + 1)), "correlation_id"),
        (doc(resource={"type": "t" * 129, "id": "r"}), "resource.type"),
    ],
)
def test_identifiers_over_the_limit_rejected(document: dict[str, Any], loc: str) -> None:
    message = errors_of(document)
    assert message.startswith(f"{loc}: ")
    assert "should have at most" in message


def test_identifiers_at_the_limit_accepted() -> None:
    ident = "i" * MAX_ID_CHARS
    event = AuditEvent.model_validate(
        doc(tenant_id=ident, actor={"id": ident}, session_id=ident, correlation_id=ident)
    )
    assert event.tenant_id == event.actor.id == event.session_id == ident


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_required_identifier_rejected(blank: str) -> None:
    message = errors_of(doc(tenant_id=blank))
    assert message.startswith("tenant_id: ")
    assert "should have at least 1" in message


def test_identifiers_are_stripped() -> None:
    event = AuditEvent.model_validate(doc(tenant_id="  acme ", actor={"id": " u-1 "}))
    assert (event.tenant_id, event.actor.id) == ("acme", "u-1")


def test_enum_fields_are_case_insensitive() -> None:
    event = AuditEvent.model_validate(
        doc(
            actor={"id": "u", "type": " SYSTEM "},
            outcome="Denied",
            channel="WEB",
            resource={"type": " Document ", "id": "d"},
        )
    )
    assert event.actor.type is ActorType.SYSTEM
    assert event.outcome is Outcome.DENIED
    assert event.channel is Channel.WEB
    assert event.resource.type == "document"


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        (doc(outcome="maybe"), "outcome"),
        (doc(channel="pigeon"), "channel"),
        (doc(actor={"id": "u", "type": "robot"}), "actor.type"),
        (doc(schema_version=2), "schema_version"),
        (doc(event_id="not-a-uuid"), "event_id"),
        (doc(parent_event_id="nope"), "parent_event_id"),
    ],
)
def test_bad_values_named(document: dict[str, Any], loc: str) -> None:
    assert errors_of(document).startswith(f"{loc}: ")


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        (doc(severity="high"), "severity"),
        (doc(actor={"id": "u", "role": "admin"}), "actor.role"),
        (doc(resource={"type": "d", "id": "1", "owner": "x"}), "resource.owner"),
        (doc(location={"planet": "earth"}), "location.planet"),
        (doc(changes=[{"field": "f", "reason": "x"}]), "changes.0.reason"),
    ],
)
def test_extra_fields_forbidden(document: dict[str, Any], loc: str) -> None:
    assert errors_of(document) == f"{loc}: Extra inputs are not permitted"


def test_list_and_map_size_limits() -> None:
    changes = [{"field": f"f{i}"} for i in range(MAX_CHANGES)]
    assert len(AuditEvent.model_validate(doc(changes=changes)).changes) == MAX_CHANGES
    assert errors_of(doc(changes=[*changes, {"field": "one-too-many"}])).startswith("changes: ")
    metadata = {f"k{i}": i for i in range(MAX_METADATA_KEYS)}
    assert len(AuditEvent.model_validate(doc(metadata=metadata)).metadata) == MAX_METADATA_KEYS
    assert errors_of(doc(metadata={**metadata, "extra": 1})).startswith("metadata: ")


def test_changes_keep_any_json_value() -> None:
    event = AuditEvent.model_validate(
        doc(changes=[{"field": " title ", "old": {"a": [1, None]}, "new": None}])
    )
    change = event.changes[0]
    assert (change.field, change.old, change.new) == ("title", {"a": [1, None]}, None)


def test_explicit_event_id_kept() -> None:
    event_id = uuid.uuid4()
    assert AuditEvent.model_validate(doc(event_id=str(event_id))).event_id == event_id


def test_events_are_frozen() -> None:
    event = AuditEvent.model_validate(doc())
    with pytest.raises(ValidationError):
        event.tenant_id = "other"  # type: ignore[misc]


def test_event_key_is_partition_key_of_tenant_and_actor() -> None:
    event = AuditEvent.model_validate(doc(tenant_id="acme", actor={"id": "u:1"}))
    assert event.key == partition_key("acme", "u:1") == b"acme:u\\:1"


def test_partition_key_plain() -> None:
    assert partition_key("acme", "u-1") == b"acme:u-1"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a:b", "c"), ("a", "b:c")),
        (("a\\", "b"), ("a", "\\b")),
        (("a\\", ":b"), ("a\\:", "b")),
        (("", "a:b"), ("a", "b")),
    ],
)
def test_partition_key_escaping_separates_pairs(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    assert partition_key(*first) != partition_key(*second)


def test_partition_key_is_injective_over_tricky_parts() -> None:
    parts = ["", "a", "b", ":", "\\", "a:", ":b", "a:b", "a\\", "\\b", "\\:", ":\\", "a\\:b"]
    pairs = list(itertools.product(parts, repeat=2))
    keys = {partition_key(t, a) for t, a in pairs}
    assert len(keys) == len(pairs)


# Identifiers refuse hidden characters (issue 9, item 11); see schemas/values.py.

HIDDEN = [0x00, 0x09, 0x0A, 0x1B, 0x1F, 0x7F, 0x80, 0x85, 0x9F, 0x061C, 0x200B, 0x200C, 0x200D]
HIDDEN += [0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2066, 0x2067]
HIDDEN += [0x2068, 0x2069, 0xFEFF]
IDENTIFIER_FIELDS: list[tuple[str, Any]] = [
    ("tenant_id", lambda t: doc(tenant_id=t)),
    ("actor.id", lambda t: doc(actor={"id": t})),
    ("resource.id", lambda t: doc(resource={"type": "doc", "id": t})),
    ("resource.type", lambda t: doc(resource={"type": t, "id": "1"})),
    ("session_id", lambda t: doc(session_id=t)),
    ("correlation_id", lambda t: doc(correlation_id=t)),
    ("changes.0.field", lambda t: doc(changes=[{"field": t}])),
    ("action", lambda t: doc(action="up" + t[2:] + "date")),
    ("actor.type", lambda t: doc(actor={"id": "u", "type": t})),
    ("outcome", lambda t: doc(outcome=t)),
    ("channel", lambda t: doc(channel=t)),
]


@pytest.mark.parametrize(("loc", "build"), IDENTIFIER_FIELDS, ids=[f[0] for f in IDENTIFIER_FIELDS])
@pytest.mark.parametrize("point", HIDDEN, ids=lambda p: f"U+{p:04X}")
def test_identifiers_refuse_hidden_characters(loc: str, build: Any, point: int) -> None:
    message = errors_of(build("ab" + chr(point) + "cd"))
    assert message.startswith(f"{loc}: U+{point:04X} (")
    assert "at position 2 is not allowed in an identifier" in message


def test_the_message_names_the_character() -> None:
    assert errors_of(doc(tenant_id="ac\u202eme")).startswith(
        "tenant_id: U+202E (RIGHT-TO-LEFT OVERRIDE) at position 2"
    )
    assert errors_of(doc(tenant_id="a\x00")).startswith("tenant_id: U+0000 (NUL) at position 1")
    assert errors_of(doc(actor={"id": "a\x9bb"})).startswith(
        "actor.id: U+009B (control character) at position 1"
    )


def test_identifier_whitespace_at_the_ends_is_still_stripped() -> None:
    event = AuditEvent.model_validate(doc(tenant_id="\tacme\n", actor={"id": " u\x85"}))
    assert (event.tenant_id, event.actor.id) == ("acme", "u")


@pytest.mark.parametrize("text", ["müller", "用户", "a\u00a0b", "🙂", "a b", "Ω-1"])
def test_identifiers_keep_visible_unicode(text: str) -> None:
    event = AuditEvent.model_validate(doc(tenant_id=text, resource={"type": "doc", "id": text}))
    assert event.tenant_id == event.resource.id == text


def test_free_text_keeps_hidden_characters() -> None:
    text = "\u202eevil\u200b\x1b[0m\x00"
    event = AuditEvent.model_validate(
        doc(
            actor={"id": "u", "display_name": text, "email": text},
            resource={"type": "doc", "id": "1", "name": text},
            user_agent=text,
            location={"city": text, "region": text},
            changes=[{"field": "f", "old": text, "new": {"k": text}}],
            metadata={"m": text, text: 1},
        )
    )
    assert event.actor.display_name == event.resource.name == event.user_agent == text
    assert event.changes[0].old == text
    assert event.metadata == {"m": text, text: 1}


@pytest.mark.parametrize("field", ["session_id", "correlation_id"])
def test_explicit_none_for_optional_identifiers_is_unset(field: str) -> None:
    assert getattr(AuditEvent.model_validate(doc(**{field: None})), field) is None


# JSON values are kept exactly or refused (issue 9, item 11).


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**100, -(2**200)])
def test_integers_beyond_64_bits_are_refused(number: int) -> None:
    for document, loc in [
        (doc(changes=[{"field": "f", "old": number}]), "changes.0.old"),
        (doc(changes=[{"field": "f", "new": [number]}]), "changes.0.new"),
        (doc(metadata={"a": {"b": number}}), "metadata"),
    ]:
        message = errors_of(document)
        assert message.startswith(f"{loc}: integer "), message
        assert "is outside the range kept exactly" in message


def test_huge_integers_are_described_without_printing_them() -> None:
    message = errors_of(doc(metadata={"x": 10**5000}))
    assert message.startswith("metadata: integer of 16610 bits is outside the range")


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 0, True])
def test_integers_within_64_bits_are_kept(number: int) -> None:
    event = AuditEvent.model_validate(doc(changes=[{"field": "f", "new": number}]))
    assert event.changes[0].new == number
    assert type(event.changes[0].new) is type(number)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(number: float) -> None:
    message = errors_of(doc(metadata={"x": [1, number]}))
    assert message == (
        f'metadata: {number!r} is not a finite number (JSON has no NaN or Infinity) (at ["x"][1])'
    )
    assert errors_of(doc(changes=[{"field": "f", "old": number}])).startswith("changes.0.old: ")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_in_json_are_refused(literal: bytes) -> None:
    # pydantic's own JSON reader takes NaN and Infinity; the schema still refuses them
    raw = orjson.dumps(doc()).replace(
        b'"tenant_id"', b'"metadata":{"x":' + literal + b'},"tenant_id"'
    )
    with pytest.raises(ValidationError, match="not a finite number"):
        AuditEvent.model_validate_json(raw)


def test_values_nest_at_most_64_levels() -> None:
    nested: Any = "leaf"
    for _ in range(MAX_VALUE_DEPTH):
        nested = [nested]
    AuditEvent.model_validate(doc(changes=[{"field": "f", "new": nested}]))
    message = errors_of(doc(changes=[{"field": "f", "new": [nested]}]))
    assert message.startswith("changes.0.new: nested deeper than 64 levels (at [0][0]")


@pytest.mark.parametrize(
    "stamp", ["1970-01-01T00:00:00Z", "2105-12-31T23:59:59.999Z", "2106-01-01T00:30:00+01:00"]
)
def test_the_store_range_is_accepted(stamp: str) -> None:
    AuditEvent.model_validate(doc(occurred_at=stamp))


@pytest.mark.parametrize("stamp", ["1969-12-31T23:59:59.999Z", "2106-01-01T00:00:00Z"])
def test_beyond_the_store_range_is_refused(stamp: str) -> None:
    assert "is outside 1970-2105 (UTC), the range the store can keep" in errors_of(
        doc(occurred_at=stamp)
    )
