"""Producer behaviour with a fake Kafka: validation paths, helpers, buffering, spooling, close.

Every test runs against both ``AuditProducer`` and ``AsyncAuditProducer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.producers import (
    AsyncAuditProducer,
    AuditProducer,
    BufferFull,
    EventTooLarge,
    InvalidEvent,
    ProducerClosed,
    ProducerConfig,
)
from auditstream.schemas.event import AuditEvent

from .test_producer_support import FakeKafka, Sync

KINDS = [AuditProducer, AsyncAuditProducer]


def valid(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "actor": {"id": "u1"},
        "action": "update",
        "resource": {"type": "invoice", "id": "INV-1"},
    }
    fields.update(overrides)
    return fields


class Harness:
    def __init__(self, kind: Any, tmp: Path, **settings: Any) -> None:
        self.fakes: list[FakeKafka] = []
        capacity = settings.pop("capacity", 1_000_000)

        def factory(config: dict[str, Any]) -> FakeKafka:
            self.fakes.append(FakeKafka(config, capacity))
            return self.fakes[-1]

        config = ProducerConfig(
            bootstrap_servers="fake:9092", topic="raw", spool_dir=tmp / "spool", **settings
        )
        self.sync = Sync(kind(config, kafka_factory=factory))

    @property
    def kafka(self) -> FakeKafka:
        return self.fakes[-1]

    def sent(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for _, v in self.kafka.sent]


@pytest.fixture(params=KINDS, ids=["sync", "async"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def build(**settings: Any) -> Harness:
        made.append(Harness(request.param, tmp_path, **settings))
        return made[-1]

    yield build
    for harness in made:
        harness.kafka.up = True
        harness.sync.close()


# -- validation: every error path names the field and sends nothing --------------------------
INVALID = [
    ({"tenant_id": None}, "tenant_id", "string"),
    ({"tenant_id": " "}, "tenant_id", "at least 1"),
    ({"tenant_id": "t" * 257}, "tenant_id", "at most 256"),
    ({"actor": None}, "actor", "valid dictionary"),
    ({"actor": {"name": "x"}}, "actor.id", "Field required"),
    ({"actor": {"id": "u", "type": "robot"}}, "actor.type", "Input should be"),
    ({"actor": {"id": "u", "timezone": "Mars/Base"}}, "actor.timezone", "not an IANA time zone"),
    ({"action": "teleport"}, "action", "unknown action 'teleport'"),
    ({"resource": {"id": "1"}}, "resource.type", "Field required"),
    ({"resource": {"type": "t" * 129, "id": "1"}}, "resource.type", "at most 128"),
    ({"outcome": "maybe"}, "outcome", "Input should be"),
    ({"ip": "999.1.1.1"}, "ip", "not an IPv4 or IPv6 address"),
    ({"channel": "pigeon"}, "channel", "Input should be"),
    ({"location": {"country": "DEU"}}, "location.country", "should match pattern"),
    ({"location": {"latitude": 91}}, "location.latitude", "less than or equal to 90"),
    ({"changes": [{"old": 1}]}, "changes.0.field", "Field required"),
    ({"changes": [{"field": "f"}] * 501}, "changes", "at most 500"),
    ({"metadata": {f"k{i}": i for i in range(101)}}, "metadata", "at most 100"),
    ({"event_id": "nope"}, "event_id", "UUID"),
    ({"occurred_at": "yesterday"}, "occurred_at", "datetime"),
    ({"occurred_at": datetime(2106, 1, 2, tzinfo=UTC)}, "occurred_at", "outside 1970-2105"),
    ({"schema_version": 2}, "schema_version", "Input should be 1"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ({"session_id": "s" * 257}, "session_id", "at most 256"),
]


@pytest.mark.parametrize(("change", "field", "message"), INVALID)
def test_invalid_input_names_the_field_and_sends_nothing(
    make: Any, change: dict[str, Any], field: str, message: str
) -> None:
    h = make()
    with pytest.raises(InvalidEvent) as caught:
        h.sync.emit(**valid(**change))
    problems = {p.field: p.message for p in caught.value.problems}
    assert field in problems, caught.value
    assert message in problems[field], caught.value
    assert "nothing was sent" in str(caught.value)
    h.sync.call("flush", 1)
    assert h.kafka.sent == []
    assert h.sync.producer.stats.accepted == 0


def test_oversized_event_is_refused(make: Any) -> None:
    h = make(max_event_bytes=1024)
    with pytest.raises(EventTooLarge, match="over the 1024-byte limit"):
        h.sync.emit(**valid(metadata={"blob": "x" * 2000}))
    assert h.sync.producer.stats.accepted == 0


def test_event_object_and_fields_together_is_a_type_error(make: Any) -> None:
    h = make()
    event = AuditEvent(occurred_at=datetime.now(UTC), **valid())
    with pytest.raises(TypeError, match="not both"):
        h.sync.emit(event, tenant_id="x")
    with pytest.raises(TypeError, match="AuditEvent or keyword fields"):
        h.sync.emit({"tenant_id": "x"})


def test_emit_takes_fields_or_an_event_and_returns_the_id(make: Any) -> None:
    h = make()
    first = h.sync.emit(**valid(action="Edited", ip=" ::ffff:10.0.0.1 "))
    event = AuditEvent(occurred_at=datetime.now(UTC), **valid())
    second = h.sync.emit(event)
    assert second == str(event.event_id)
    assert h.sync.call("flush", 5) == 0
    docs = h.sent()
    assert [d["event_id"] for d in docs] == [first, second]
    assert docs[0]["action"] == "update"
    assert docs[0]["ip"] == "10.0.0.1"
    assert h.kafka.sent[0][0] == b"acme:u1"
    stats = h.sync.producer.stats
    assert (stats.accepted, stats.delivered, stats.undelivered) == (2, 2, 0)


def test_helpers(make: Any) -> None:
    h = make()
    h.sync.call("sign_in", "acme", "u1", session_id="s1", ip="203.0.113.9")
    h.sync.call("sign_in_failed", "acme", {"id": "u1", "email": "a@b.c"}, reason="bad password")
    h.sync.call("sign_out", "acme", "u1", session_id="s1")
    h.sync.call(
        "record_change",
        "acme",
        "u1",
        ("invoice", "INV-7"),
        before={"amount": 120, "status": "draft", "address": {"city": "Bonn", "zip": "1"}},
        after={"amount": 80, "status": "draft", "address": {"city": "Köln", "zip": "1"}},
    )
    h.sync.call("record_change", "acme", "u1", ("tag", "t1"), before=None, after={"name": "x"})
    h.sync.call("flush", 5)
    docs = h.sent()
    assert [d["action"] for d in docs] == [
        "sign_in", "sign_in_failed", "sign_out", "update", "create",
    ]  # fmt: skip
    assert docs[0]["resource"] == {"type": "session", "id": "s1"}
    assert docs[0]["session_id"] == "s1"
    assert docs[1]["outcome"] == "failure"
    assert docs[1]["metadata"] == {"reason": "bad password"}
    assert docs[3]["changes"] == [
        {"field": "amount", "old": 120, "new": 80},
        {"field": "address.city", "old": "Bonn", "new": "Köln"},
    ]
    assert docs[4]["changes"] == [{"field": "name", "new": "x"}]


# -- buffering and spooling ------------------------------------------------------------------
def test_full_memory_buffer_spills_to_the_spool_and_replays_in_order(make: Any) -> None:
    h = make(capacity=5)
    h.kafka.up = False
    ids = [h.sync.emit(**valid(metadata={"n": n})) for n in range(40)]
    assert h.sync.producer.stats.spooled == 35
    h.kafka.up = True
    assert h.sync.call("flush", 10) == 0
    assert [d["event_id"] for d in h.sent()] == ids


def test_full_buffer_and_spool_raise_buffer_full(make: Any) -> None:
    h = make(capacity=2, spool_max_bytes=2048, segment_bytes=1024, on_full="raise")
    h.kafka.up = False
    with pytest.raises(BufferFull, match="the event was not accepted"):  # noqa: PT012
        for n in range(100):
            h.sync.emit(**valid(metadata={"n": n}))
    accepted = h.sync.producer.stats.accepted
    assert 2 < accepted < 100
    h.kafka.up = True
    assert h.sync.call("flush", 10) == 0
    assert len(h.kafka.sent) == accepted


def test_full_spool_blocks_up_to_the_timeout(make: Any) -> None:
    h = make(capacity=1, spool_max_bytes=2048, segment_bytes=1024, block_timeout_seconds=0.3)
    h.kafka.up = False
    with pytest.raises(BufferFull):  # noqa: PT012 - the 100 emits are the point
        for n in range(100):
            h.sync.emit(**valid(metadata={"n": n}))


def test_disk_mode_spools_every_event_and_deletes_acked_segments(make: Any) -> None:
    h = make(durability="disk", segment_bytes=2048)
    for n in range(50):
        h.sync.emit(**valid(metadata={"n": n}))
    assert h.sync.producer.stats.spooled == 50
    assert h.sync.call("flush", 10) == 0
    spool = h.sync.producer._dispatcher.spool
    assert spool is not None
    assert len(spool.segments) <= 1  # only the active segment is left
    assert [d["metadata"]["n"] for d in h.sent()] == list(range(50))


def test_close_keeps_undelivered_events_for_the_next_start(make: Any, tmp_path: Path) -> None:
    h = make(capacity=3)
    h.kafka.up = False
    ids = [h.sync.emit(**valid(metadata={"n": n})) for n in range(10)]
    assert h.sync.close(0.2) == 10  # 3 in memory, 7 in the spool: none hidden
    again = make()
    assert again.sync.producer.stats.recovered == 10
    assert again.sync.call("flush", 5) == 0
    assert [d["event_id"] for d in again.sent()] == ids


def test_emit_after_close(make: Any) -> None:
    h = make()
    h.sync.call("close", 5)
    with pytest.raises(ProducerClosed):
        h.sync.emit(**valid())
