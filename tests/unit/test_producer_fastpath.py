"""The fast validation path accepts exactly what the pydantic model accepts, with the same result.

Property-style: thousands of generated inputs, valid ones and ones mutated to be invalid or
unusual. For each: either the fast path declines (pydantic then decides), or the model
accepts the input too and both give the same document.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from auditstream.producers.config import ProducerConfig
from auditstream.producers.encoder import EventEncoder
from auditstream.producers.fastpath import fast_document, format_ms
from auditstream.producers.sample import events as sample_events
from auditstream.schemas.actions import Action
from auditstream.schemas.event import ActorType, AuditEvent, Channel, Outcome

NOW_MS = 1_790_000_000_123
EVENT_ID = "01990000-0000-7000-8000-000000000000"

STRINGS: list[Any] = [
    "", " ", "x", " padded ", "UPPER", "a" * 256, "a" * 257, " " + "b" * 256 + " ", "é" * 300,
    "line\nbreak", "\t", "Europe/Berlin", " Europe/Berlin ", "Mars/Olympus", "UTC", "de", "DE ",
    "d3", "ü1", "deu", "203.0.113.9", " 203.0.113.9 ", "::ffff:10.0.0.1", "2001:db8::1",
    "999.1.1.1", "member", " API ", "robot", "success", "FAILURE", "nope", "web", "Mobile",
    "update", "Deleted", "log-in", "teleport", "x" * 1100, "a:b", "a\\b",
    # hidden characters: identifiers refuse them, free text keeps them (schemas/values.py)
    "a\x00b", "nul\x00", "\x1b[31mred", "del\x7f", "c1\x9b", " \x85trail\x85 ", "\u061cx",
    "zw\u200bsp", "\u200dzwj", "lrm\u200e", "rlm\u200f", "\u202aembed", "rlo\u202eexe.gnp",
    "wj\u2060", "\u2066iso\u2069", "\ufeffbom", "nb\u00a0sp", "müller", "用户", "🙂",
    "up\u200bdate", "delete\u202e", "Europe/Ber\u200blin", "web\u2060", "de\u200b",
]  # fmt: skip
ODD: list[Any] = [
    None, 0, 1, -1, 1.5, float("nan"), float("inf"), True, False, b"bytes", [], {}, (), ["x"],
    {"k": "v"}, uuid.uuid4(), datetime(2026, 1, 1), Action.UPDATE, ActorType.API, Channel.WEB,
    Outcome.DENIED, 10**30, object(), 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, -float("inf"),
]  # fmt: skip
VALUES: list[Any] = STRINGS + ODD


DEEP: Any = "leaf"
for _ in range(63):
    DEEP = [DEEP]  # 63 levels: metadata {"k": DEEP} is the deepest it takes; a change value, [DEEP]


def base_fields(rng: random.Random) -> dict[str, Any]:
    fields = next(iter(sample_events(1, seed=rng.randrange(10**6))))
    if rng.random() < 0.5:
        fields.pop("occurred_at")
    return fields


PATHS = [
    ("tenant_id",), ("actor",), ("actor", "id"), ("actor", "type"), ("actor", "display_name"),
    ("actor", "email"), ("actor", "timezone"), ("actor", "extra"), ("action",), ("resource",),
    ("resource", "type"), ("resource", "id"), ("resource", "name"), ("resource", "extra"),
    ("outcome",), ("ip",), ("session_id",), ("user_agent",), ("channel",), ("location",),
    ("location", "country"), ("location", "region"), ("location", "city"),
    ("location", "latitude"), ("location", "longitude"), ("location", "extra"), ("changes",),
    ("correlation_id",), ("parent_event_id",), ("metadata",), ("event_id",), ("occurred_at",),
    ("received_at",), ("schema_version",), ("unknown_field",),
]  # fmt: skip


def mutate(fields: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    fields = copy.deepcopy(fields)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path = rng.choice(PATHS)
        value = _value_for(path, rng)
        target = fields
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {} if part == "location" else {"id": "u", "type": "task"}
            target = target[part]
        if rng.random() < 0.1:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return fields


def _value_for(path: tuple[str, ...], rng: random.Random) -> Any:
    name = path[-1]
    if name in ("latitude", "longitude"):
        return rng.choice([0, 45, -90, 90.0, 180, -180.5, 91, 52.52, "52.5", None, True, 1e-7])
    if name in ("occurred_at", "received_at"):
        return rng.choice(
            [
                datetime.now(UTC),
                datetime(2026, 5, 6, 7, 8, 9, 999_999),
                datetime(2026, 5, 6, 7, 8, 9, 123_456, tzinfo=timezone(timedelta(hours=5))),
                datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
                datetime(2105, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
                datetime(2106, 1, 1, tzinfo=UTC),
                datetime(2106, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
                datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
                "2026-01-01T00:00:00Z",
                1_700_000_000,
                None,
            ]
        )
    if name in ("event_id", "parent_event_id"):
        return rng.choice([uuid.uuid4(), str(uuid.uuid4()), "not-a-uuid", None, 5])
    if name == "schema_version":
        return rng.choice([1, 2, "1", True, None, 1.0])
    if name == "changes":
        return rng.choice(
            [
                [],
                [{"field": "a", "old": 1, "new": None}],
                [{"field": " b ", "old": {"x": None}, "new": [1, "2"]}],
                [{"field": "", "old": 1}],
                [{"field": "c", "extra": 1}],
                [{"field": "d", "old": datetime(2026, 1, 1, tzinfo=UTC)}],
                [{"field": "e", "new": uuid.UUID(int=1)}],
                [{"field": "f", "new": 10**30}],
                [{"field": "f", "new": 2**64 - 1, "old": -(2**63)}],
                [{"field": "f", "new": 2**64}],
                [{"field": "f", "old": [1, {"x": -(2**63) - 1}]}],
                [{"field": "f", "new": float("nan")}],
                [{"field": "f", "old": {"a": [float("inf")]}}],
                [{"field": "f", "new": (1, float("-inf"))}],
                [{"field": "f", "new": DEEP}],
                [{"field": "f", "new": [DEEP]}],
                [{"field": "f\u202e", "new": 1}],
                [{"field": "f\x00"}],
                [{"field": "\u202e", "new": "\u202e\x00 value text is free"}],
                [{"field": "g", "new": {1: "int key"}}],
                [{"field": "h"}] * 501,
                ({"field": "tuple"},),
                None,
                "not a list",
            ]
        )
    if name == "metadata":
        return rng.choice(
            [
                {},
                {"a": 1, "b": None, "c": {"d": [1, 2.5, "x"]}},
                {1: "int key"},
                {f"k{i}": i for i in range(101)},
                {f"k{i}": i for i in range(100)},
                {"t": (1, 2)},
                {"when": datetime(2026, 1, 1, tzinfo=UTC)},
                {"nan": float("nan")},
                {"deep": {"inf": [float("inf")]}},
                {"big": 2**64},
                {"big": [-(2**63) - 1]},
                {"edge": [2**64 - 1, -(2**63)]},
                {"deep": DEEP},
                {"deep": [DEEP]},
                {"text": "\u202e\x00\ufeff free text"},
                None,
                [],
            ]
        )
    if name == "location":
        return rng.choice([{}, None, {"country": "de", "latitude": 1}, "Berlin"])
    if name in ("actor", "resource"):
        return rng.choice([{}, None, "u1", {"id": "x", "type": "api"}])
    return rng.choice(VALUES)


def pydantic_document(fields: dict[str, Any]) -> dict[str, Any] | None:
    """What the model makes of ``fields`` (None: it refuses them)."""
    fields = dict(fields)
    fields.setdefault("occurred_at", format_ms(NOW_MS))
    fields.setdefault("event_id", uuid.UUID(EVENT_ID))
    try:
        event = AuditEvent(**fields)
    except (ValidationError, TypeError, OSError):  # OSError: an absurd time zone name
        return None
    try:
        return json.loads(to_json(event.model_dump(mode="json", exclude_none=True)))
    except PydanticSerializationError:
        return None


def check(fields: dict[str, Any]) -> str:
    fast = fast_document(fields, NOW_MS, EVENT_ID)
    if fast is None:
        return "declined"
    try:
        fast_json = orjson.loads(orjson.dumps(fast, option=orjson.OPT_PASSTHROUGH_DATETIME))
    except TypeError:
        return "declined at encoding"
    expected = pydantic_document(fields)
    assert expected is not None, f"fast path accepted what the model refuses: {fields!r}"
    assert fast_json == expected, fields
    return "accepted"


def test_sample_events_take_the_fast_path_and_match_the_model() -> None:
    for fields in sample_events(500, seed=5):
        assert check(fields) == "accepted"


@pytest.mark.parametrize("seed", range(4))
def test_generated_inputs_agree_with_the_model(seed: int) -> None:
    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    for _ in range(3000):
        fields = mutate(base_fields(rng), rng)
        result = check(fields)
        outcomes[result] = outcomes.get(result, 0) + 1
        if result != "accepted":
            # whatever the fast path declines, the encoder still decides like the model
            assert_encoder_agrees(fields)
    assert outcomes.get("accepted", 0) > 300, outcomes
    assert outcomes.get("declined", 0) > 300, outcomes


ENCODER = EventEncoder(ProducerConfig(bootstrap_servers="unused:9092"))


def assert_encoder_agrees(fields: dict[str, Any]) -> None:
    from auditstream.producers.errors import InvalidEvent

    expected = pydantic_document(fields)
    try:
        prepared = ENCODER.from_fields(fields)
    except InvalidEvent:
        assert expected is None, fields
        return
    assert expected is not None, fields
    got = json.loads(prepared.value)
    for doc in (got, expected):
        doc.pop("event_id")
        doc.pop("occurred_at")
    assert got == expected


def test_timestamps_are_utc_milliseconds() -> None:
    base = next(iter(sample_events(1)))
    for when in [
        datetime(2026, 5, 6, 7, 8, 9, 999_999, tzinfo=UTC),
        datetime(2026, 5, 6, 7, 8, 9, 999_999),
        datetime(2026, 5, 6, 9, 8, 9, 1_000, tzinfo=timezone(timedelta(hours=2))),
        datetime(1970, 1, 1, tzinfo=UTC),
    ]:
        assert check({**base, "occurred_at": when}) == "accepted"


HIDDEN_IN_IDS = ["a\x00b", "\x1b[1m", "x\x7f", "x\x9b", "x\u061c", "x\u200b", "x\u200f"]
HIDDEN_IN_IDS += ["x\u202e", "x\u2060", "\u2066x\u2069", "x\ufeff"]
ID_PATHS = [
    ("tenant_id",), ("actor", "id"), ("resource", "id"), ("resource", "type"), ("session_id",),
    ("correlation_id",), ("actor", "type"), ("outcome",), ("channel",),
]  # fmt: skip


def _set(fields: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    fields = copy.deepcopy(fields)
    target = fields
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return fields


def _refused_naming(fields: dict[str, Any], loc: str, text: str) -> None:
    from auditstream.producers.errors import InvalidEvent

    assert check(fields) == "declined"
    assert pydantic_document(fields) is None
    with pytest.raises(InvalidEvent) as info:
        ENCODER.from_fields(fields)
    message = str(info.value)
    assert f"{loc}: " in message, message
    assert text in message, message


@pytest.mark.parametrize("path", ID_PATHS, ids="_".join)
@pytest.mark.parametrize("text", HIDDEN_IN_IDS, ids=ascii)
def test_hidden_characters_in_identifiers_are_refused_on_both_routes(
    path: tuple[str, ...], text: str
) -> None:
    fields = _set(next(iter(sample_events(1))), path, "ok" + text)
    hidden = next(c for c in text if not c.isprintable())
    _refused_naming(fields, ".".join(path), f"U+{ord(hidden):04X}")


@pytest.mark.parametrize("path", [("actor", "display_name"), ("user_agent",)], ids="_".join)
@pytest.mark.parametrize("text", HIDDEN_IN_IDS, ids=ascii)
def test_hidden_characters_in_free_text_are_kept_on_both_routes(
    path: tuple[str, ...], text: str
) -> None:
    fields = _set(next(iter(sample_events(1))), path, "ok" + text)
    assert check(fields) == "accepted"
    assert_encoder_agrees(fields)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2**64, "integer 18446744073709551616 is outside"),
        (-(2**63) - 1, "integer -9223372036854775809 is outside"),
        ({"a": [10**30]}, "is outside the range kept exactly"),
        (float("nan"), "nan is not a finite number"),
        ([float("inf")], "inf is not a finite number"),
        ([[DEEP]], "nested deeper than 64 levels"),
    ],
    ids=["2**64", "-2**63-1", "nested-10**30", "nan", "inf", "deep"],
)
def test_values_the_store_cannot_keep_exactly_are_refused_on_both_routes(
    value: Any, message: str
) -> None:
    base = next(iter(sample_events(1)))
    _refused_naming({**base, "changes": [{"field": "f", "new": value}]}, "changes.0.new", message)
    _refused_naming({**base, "metadata": {"m": [value]}}, "metadata", message.split(" (")[0])


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 2**53 + 1, [DEEP], 1e300])
def test_values_kept_exactly_take_the_fast_path(value: Any) -> None:
    base = next(iter(sample_events(1)))
    fields = {**base, "changes": [{"field": "f", "new": value}]}
    assert check(fields) == "accepted"
    prepared = ENCODER.from_fields(fields)
    assert json.loads(prepared.value)["changes"][0]["new"] == fields["changes"][0]["new"]
