"""The pure normalizer step: bytes in, what to do with them out."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.config import Settings
from auditstream.schemas.codec import decode, encode
from auditstream.schemas.event import partition_key
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import (
    Duplicate,
    Invalid,
    Normalized,
    Normalizer,
    Reason,
)

NOW = datetime(2026, 5, 6, 7, 8, 9, 987654, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def raw_event(**overrides: Any) -> bytes:
    document: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-05-06T09:00:00.123456+02:00",
        "tenant_id": "acme",
        "actor": {"id": "u:1"},
        "action": "Deleted",
        "resource": {"type": "doc", "id": "d-1"},
    }
    document.update(overrides)
    return orjson.dumps(document)


def raw_json(**overrides: Any) -> bytes:
    """Like ``raw_event``, through the standard library (it writes integers of any size)."""
    document = orjson.loads(raw_event())
    document.update(overrides)
    return json.dumps(document).encode()


def make(
    max_bytes: int = 65_536,
    clock: Clock | None = None,
    window: float = 60,
    retention_days: int = 365,
    skew: float = 86_400,
) -> Normalizer:
    return Normalizer(
        max_bytes,
        RecentIds(window, 1000, clock or Clock()),
        now=lambda: NOW,
        retention_days=retention_days,
        max_future_skew_seconds=skew,
    )


@pytest.mark.parametrize("raw", [b"", None])
def test_empty(raw: bytes | None) -> None:
    assert make()(raw) == Invalid(Reason.EMPTY, "message has no value")


def test_oversized() -> None:
    raw = raw_event()
    outcome = make(max_bytes=len(raw) - 1)(raw)
    assert outcome == Invalid(
        Reason.OVERSIZED, f"{len(raw)} bytes is over the {len(raw) - 1}-byte limit"
    )


def test_exactly_at_the_limit_is_accepted() -> None:
    raw = raw_event()
    assert isinstance(make(max_bytes=len(raw))(raw), Normalized)


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b'{"a": 1,}', b"NaN"])
def test_invalid_json(raw: bytes) -> None:
    outcome = make()(raw)
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_JSON
    assert outcome.detail.startswith("not JSON: ")


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b'"event"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    assert make()(raw) == Invalid(Reason.INVALID_JSON, "an event is a JSON object")


def test_invalid_event_names_the_field() -> None:
    outcome = make()(raw_event(actor={"name": "x"}))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_EVENT
    assert "actor.id: Field required" in outcome.detail
    assert "actor.name: Extra inputs are not permitted" in outcome.detail


def test_unknown_action_detail() -> None:
    outcome = make()(raw_event(action="teleport"))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_EVENT
    assert outcome.detail.startswith("action: unknown action 'teleport'")


def test_normalized_event_is_canonical_and_stamped() -> None:
    outcome = make()(raw_event())
    assert isinstance(outcome, Normalized)
    event = outcome.event
    assert event.action == "delete"
    assert event.occurred_at == datetime(2026, 5, 6, 7, 0, 0, 123000, tzinfo=UTC)
    assert event.received_at == datetime(2026, 5, 6, 7, 8, 9, 987000, tzinfo=UTC)
    assert outcome.key == partition_key("acme", "u:1") == event.key
    assert outcome.value == encode(event)
    document = orjson.loads(outcome.value)
    assert document["received_at"] == "2026-05-06T07:08:09.987Z"
    assert document["action"] == "delete"
    assert decode(outcome.value) == event


def test_producer_received_at_is_ignored() -> None:
    outcome = make()(raw_event(received_at="2020-01-01T00:00:00Z"))
    assert isinstance(outcome, Normalized)
    assert outcome.event.received_at == datetime(2026, 5, 6, 7, 8, 9, 987000, tzinfo=UTC)


def test_invalid_producer_received_at_does_not_reject_the_event() -> None:
    assert isinstance(make()(raw_event(received_at="garbage")), Normalized)


def test_received_at_follows_the_clock() -> None:
    times = iter(
        [
            datetime(2026, 5, 6, 8, 0, 0, 1999, tzinfo=UTC),
            datetime(2026, 5, 6, 8, 0, 1, tzinfo=UTC),
        ]
    )
    step = Normalizer(65_536, RecentIds(60, 100, Clock()), now=lambda: next(times))
    first, second = step(raw_event()), step(raw_event())
    assert isinstance(first, Normalized)
    assert isinstance(second, Normalized)
    assert first.event.received_at == datetime(2026, 5, 6, 8, 0, 0, 1000, tzinfo=UTC)
    assert second.event.received_at == datetime(2026, 5, 6, 8, 0, 1, tzinfo=UTC)


def test_duplicate_within_the_window() -> None:
    clock = Clock()
    step = make(clock=clock, window=60)
    event_id = str(uuid.uuid4())
    assert isinstance(step(raw_event(event_id=event_id)), Normalized)
    clock.t += 30
    # same id, even with other content, is a repeat
    assert step(raw_event(event_id=event_id, action="create")) == Duplicate(event_id, "acme")


def test_same_id_after_the_window_is_normalized_again() -> None:
    clock = Clock()
    step = make(clock=clock, window=60)
    raw = raw_event()
    assert isinstance(step(raw), Normalized)
    clock.t += 61
    assert isinstance(step(raw), Normalized)


def test_events_without_an_id_are_never_duplicates() -> None:
    document = orjson.loads(raw_event())
    del document["event_id"]
    raw = orjson.dumps(document)
    step = make()
    first, second = step(raw), step(raw)
    assert isinstance(first, Normalized)
    assert isinstance(second, Normalized)
    assert first.event.event_id != second.event.event_id
    assert first.event.event_id.version == 7


def test_invalid_event_is_not_remembered() -> None:
    step = make()
    event_id = str(uuid.uuid4())
    assert isinstance(step(raw_event(event_id=event_id, action="teleport")), Invalid)
    assert isinstance(step(raw_event(event_id=event_id)), Normalized)


# Identity is (tenant, event id): issue 9, item 10.


def test_the_same_event_id_from_two_tenants_is_two_events() -> None:
    step = make()
    shared = str(uuid.uuid4())
    first = step(raw_event(event_id=shared, tenant_id="evil"))
    second = step(raw_event(event_id=shared, tenant_id="acme"))
    assert isinstance(first, Normalized)
    assert isinstance(second, Normalized), "another tenant's id must not suppress this event"
    assert (first.event.tenant_id, second.event.tenant_id) == ("evil", "acme")
    assert step(raw_event(event_id=shared, tenant_id="acme")) == Duplicate(shared, "acme")
    assert step(raw_event(event_id=shared, tenant_id=" evil ")) == Duplicate(shared, "evil")


# The accepted time range: issue 9, item 4; docs/decisions/0004-accepted-time-range.md.
# NOW is 2026-05-06T07:08:09.987654Z.


def test_older_than_the_retention_horizon_is_dead_lettered() -> None:
    outcome = make(retention_days=30)(raw_event(occurred_at="2026-04-06T07:08:09.987Z"))
    assert outcome == Invalid(
        Reason.OUTSIDE_RETENTION,
        "occurred_at 2026-04-06T07:08:09.987Z is older than the retention horizon "
        "2026-04-06T07:08:09.987Z (now - AUDITSTREAM_RETENTION_DAYS=30 days): the store would "
        "delete it at once. To keep it, raise AUDITSTREAM_RETENTION_DAYS and replay it from "
        "the dead-letter topic",
    )


def test_just_inside_the_retention_horizon_is_kept() -> None:
    outcome = make(retention_days=30)(raw_event(occurred_at="2026-04-06T07:08:09.988Z"))
    assert isinstance(outcome, Normalized)


def test_beyond_the_future_skew_is_dead_lettered() -> None:
    outcome = make()(raw_event(occurred_at="2026-05-07T07:08:09.988Z"))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.IN_FUTURE
    assert outcome.detail.startswith(
        "occurred_at 2026-05-07T07:08:09.988Z is more than "
        "AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS=86400 ahead of the pipeline's clock "
        "(2026-05-06T07:08:09.987Z)"
    )


def test_within_the_future_skew_is_kept() -> None:
    assert isinstance(make()(raw_event(occurred_at="2026-05-07T07:08:09.987Z")), Normalized)
    assert isinstance(make(skew=60)(raw_event(occurred_at="2026-05-06T07:09:09Z")), Normalized)
    outcome = make(skew=60)(raw_event(occurred_at="2026-05-06T07:09:10Z"))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.IN_FUTURE


def test_the_defaults_are_the_settings_defaults() -> None:
    step = Normalizer(65_536, RecentIds(60, 100, Clock()), now=lambda: NOW)
    for days, kept in [(364, True), (366, False)]:
        stamp = (NOW - timedelta(days=days)).isoformat()
        assert isinstance(step(raw_event(occurred_at=stamp)), Normalized) is kept, days
    assert isinstance(
        step(raw_event(occurred_at=(NOW + timedelta(hours=23)).isoformat())), Normalized
    )
    assert isinstance(step(raw_event(occurred_at=(NOW + timedelta(hours=25)).isoformat())), Invalid)


def test_from_settings_takes_retention_and_skew_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "AUDITSTREAM_HOME": str(tmp_path),
            "AUDITSTREAM_RETENTION_DAYS": "30",
            "AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS": "60",
        }
    )
    step = Normalizer.from_settings(settings, now=lambda: NOW, clock=Clock())
    for stamp, reason in [
        ("2026-04-06T07:08:09.900Z", Reason.OUTSIDE_RETENTION),
        ("2026-05-06T07:09:10Z", Reason.IN_FUTURE),
    ]:
        outcome = step(raw_event(occurred_at=stamp))
        assert isinstance(outcome, Invalid)
        assert outcome.reason is reason
    assert isinstance(step(raw_event(occurred_at="2026-04-07T00:00:00Z")), Normalized)


def test_from_settings_takes_a_given_repeat_window(tmp_path: Path) -> None:
    recent = RecentIds(60, 10, Clock())
    step = Normalizer.from_settings(
        Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)}), now=lambda: NOW, recent=recent
    )
    assert isinstance(step(raw_event()), Normalized)
    assert len(recent) == 1


def test_a_dead_lettered_event_replays_once_retention_is_raised() -> None:
    """The dead-letter topic keeps the original bytes: after the setting changes they pass."""
    raw = raw_event(occurred_at="2026-02-01T00:00:00Z")
    shared = RecentIds(60, 100, Clock())
    strict = Normalizer(65_536, shared, now=lambda: NOW, retention_days=30)
    outcome = strict(raw)
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.OUTSIDE_RETENTION
    assert len(shared) == 0, "a dead-lettered event is not remembered as seen"
    relaxed = Normalizer(65_536, shared, now=lambda: NOW, retention_days=365)
    assert isinstance(relaxed(raw), Normalized)


def test_a_ttl_past_what_the_store_can_compute_is_dead_lettered() -> None:
    # retention of 80 years: occurred_at + retention passes 2106-02-07T06:28:15Z
    step = make(retention_days=80 * 366)
    outcome = step(raw_event())
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.IN_FUTURE
    assert "is past 2106-02-07T06:28:15.000Z, the last time the store's TTL can compute" in (
        outcome.detail
    )
    assert isinstance(make(retention_days=79 * 365)(raw_event()), Normalized)


@pytest.mark.parametrize("stamp", ["2106-01-01T00:00:00Z", "2150-01-01T00:00:00Z"])
def test_years_the_store_cannot_keep_are_invalid_whatever_the_skew(stamp: str) -> None:
    outcome = make(skew=1e12)(raw_event(occurred_at=stamp))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_EVENT
    assert outcome.detail.startswith("occurred_at: ")
    assert "outside 1970-2105" in outcome.detail


# Values are kept exactly or refused: issue 9, item 11.


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        (2**64, "18446744073709551616"),
        (-(2**63) - 1, "-9223372036854775809"),
        (10**30, "1" + "0" * 30),
        (-(10**40), "-10000000000…000000 (41 digits)"),
    ],
)
def test_integers_beyond_64_bits_are_refused_not_rounded(number: int, shown: str) -> None:
    outcome = make()(raw_json(changes=[{"field": "n", "old": 1, "new": number}]))
    assert isinstance(outcome, Invalid)
    assert outcome.reason is Reason.INVALID_EVENT
    assert outcome.detail.startswith(f"changes.0.new: integer {shown} is outside the range")
    assert "send it as a string" in outcome.detail


def test_a_nested_big_integer_in_metadata_is_named_with_its_path() -> None:
    outcome = make()(raw_json(metadata={"ids": [1, {"big": 2**70}]}))
    assert isinstance(outcome, Invalid)
    assert outcome.detail.startswith("metadata: integer 1180591620717411303424 is outside")
    assert outcome.detail.endswith('(at ["ids"][1]["big"])')


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 2**53 + 1, 0, -1])
def test_integers_within_64_bits_are_kept_exactly(number: int) -> None:
    outcome = make()(raw_json(changes=[{"field": "n", "new": number}], metadata={"n": number}))
    assert isinstance(outcome, Normalized)
    assert outcome.event.changes[0].new == number
    assert f'"new":{number}'.encode() in outcome.value
    document = orjson.loads(outcome.value)  # what the sink and the detectors read
    assert document["changes"][0]["new"] == document["metadata"]["n"] == number
    assert type(document["metadata"]["n"]) is int


def test_floats_stay_floats() -> None:
    outcome = make()(raw_event(metadata={"f": 0.1}))
    assert isinstance(outcome, Normalized)
    assert outcome.event.metadata == {"f": 0.1}
    big = make()(raw_event().replace(b'"tenant_id"', b'"metadata":{"f":1e19},"tenant_id"'))
    assert isinstance(big, Normalized)
    assert big.event.metadata == {"f": 1e19}
    assert type(big.event.metadata["f"]) is float


def test_numbers_json_cannot_carry_are_refused() -> None:
    too_big = make()(raw_event().replace(b'"tenant_id"', b'"metadata":{"f":1e400},"tenant_id"'))
    assert isinstance(too_big, Invalid)
    assert too_big.reason is Reason.INVALID_EVENT
    assert "inf is not a finite number" in too_big.detail
    nan = make()(raw_event().replace(b'"tenant_id"', b'"metadata":{"f":NaN},"tenant_id"'))
    assert isinstance(nan, Invalid)
    assert nan.reason is Reason.INVALID_JSON


@pytest.mark.parametrize(("depth", "kept"), [(63, True), (64, False), (300, False), (5000, False)])
def test_nesting_is_bounded_and_the_step_stays_total(depth: int, kept: bool) -> None:
    nested = "[" * depth + "]" * depth
    raw = raw_event().replace(
        b'"tenant_id"', f'"metadata":{{"deep":{nested}}},"tenant_id"'.encode()
    )
    outcome = make(max_bytes=1_000_000)(raw)
    assert isinstance(outcome, Normalized) is kept
    if not kept:
        assert isinstance(outcome, Invalid)
        assert outcome.reason in (Reason.INVALID_EVENT, Reason.INVALID_JSON)


# Identifiers refuse hidden characters; free text keeps them: issue 9, item 11.

HIDDEN = ["\x00", "\x1b", "\x7f", "\x9b", "\u061c", "\u200b", "\u200d", "\u200e", "\u200f"]
HIDDEN += ["\u202a", "\u202e", "\u2060", "\u2066", "\u2069", "\ufeff"]


def _with(path: str, text: str) -> dict[str, Any]:
    base = orjson.loads(raw_event())
    if path == "changes.0.field":
        return {**base, "changes": [{"field": text, "new": 1}]}
    if "." in path:
        outer, inner = path.split(".")
        return {**base, outer: {**base.get(outer, {}), inner: text}}
    return {**base, path: text}


@pytest.mark.parametrize(
    "path",
    ["tenant_id", "actor.id", "resource.id", "resource.type", "session_id", "correlation_id",
     "changes.0.field", "action"],
)  # fmt: skip
@pytest.mark.parametrize("char", HIDDEN)
def test_identifiers_refuse_hidden_characters_naming_field_and_code_point(
    path: str, char: str
) -> None:
    text = "de" + char + "lete" if path == "action" else "ac" + char + "me"
    outcome = make()(orjson.dumps(_with(path, text)))
    assert isinstance(outcome, Invalid), (path, char)
    assert outcome.reason is Reason.INVALID_EVENT
    assert f"{path}: U+{ord(char):04X} (" in outcome.detail
    assert "at position 2 is not allowed in an identifier" in outcome.detail


@pytest.mark.parametrize(
    "path",
    ["actor.display_name", "actor.email", "resource.name", "user_agent", "location.city"],
)
def test_free_text_keeps_them(path: str) -> None:
    text = "\u202eevil\u200b\x1b[31m x"
    outcome = make()(orjson.dumps(_with(path, text)))
    assert isinstance(outcome, Normalized), outcome
    outer, _, inner = path.partition(".")
    value: Any = getattr(outcome.event, outer)
    assert (getattr(value, inner) if inner else value) == text


def test_values_keep_them() -> None:
    text = "\u202e\x00\ufeff"
    outcome = make()(raw_event(changes=[{"field": "f", "old": text}], metadata={"m": text}))
    assert isinstance(outcome, Normalized)
    assert outcome.event.changes[0].old == outcome.event.metadata["m"] == text


@pytest.mark.parametrize("ident", ["müller", "用户-1", "a\u00a0b", "emoji-🙂", "a b"])
def test_identifiers_keep_visible_unicode(ident: str) -> None:
    outcome = make()(raw_event(tenant_id=ident, actor={"id": ident}))
    assert isinstance(outcome, Normalized)
    assert outcome.event.tenant_id == outcome.event.actor.id == ident
