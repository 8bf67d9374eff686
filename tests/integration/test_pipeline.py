"""The backbone end to end: SDK -> real Kafka -> normalizer -> sink -> embedded ClickHouse."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.producers.sample import events as sample_events
from auditstream.schemas import AuditEvent
from auditstream.stream_jobs import dead_letter

from .conftest import Env, wait_for

# Yesterday, 09:15:30.123 in UTC+1: relative, so the events stay inside retention.
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).replace(
    hour=8, minute=15, second=30, microsecond=123_000
)
SENT_AT = YESTERDAY.astimezone(timezone(timedelta(hours=1))).isoformat(timespec="milliseconds")
RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")

pytestmark = pytest.mark.integration


def _producer(env: Env) -> AuditProducer:
    return AuditProducer(
        ProducerConfig(bootstrap_servers=env.bootstrap, topic=env.settings.topics.raw)
    )


def _full_event() -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "occurred_at": SENT_AT,
            "tenant_id": "acme",
            "actor": {
                "id": "usr_42",
                "type": "member",
                "display_name": "Ada Lovelace",
                "email": "ada@acme.example",
                "timezone": "Europe/Berlin",
            },
            "action": "update",
            "resource": {"type": "project", "id": "prj_7", "name": "Analytical Engine"},
            "outcome": "success",
            "ip": "203.0.113.9",
            "session_id": "sess_1",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "channel": "web",
            "location": {"country": "de", "city": "Berlin", "latitude": 52.52, "longitude": 13.4},
            "changes": [
                {"field": "name", "old": "Engine", "new": "Analytical Engine"},
                {"field": "budget", "old": 100, "new": None},
                {"field": "tags", "old": ["a"], "new": ["a", "b"]},
            ],
            "correlation_id": "req-9",
            "parent_event_id": "01937b2e-0000-7000-8000-000000000001",
            "metadata": {"request_id": "r-1", "nested": {"k": [1, 2]}},
        }
    )


def test_produced_event_lands_exactly_once_with_every_field(env: Env) -> None:
    sent = _full_event()
    with _producer(env) as audit:
        audit.emit(sent)
        audit.emit(sent)  # a producer-side repeat: same event id, must be stored once
        assert audit.flush(10) == 0
    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= 1, what="the event")
        # A second batch interval later there is still exactly one row.
        wait_for(lambda: pipeline.check() is None, timeout=1)
        columns = [
            "toString(event_id)", "schema_version", "tenant_id",
            "formatDateTime(occurred_at, '%Y-%m-%dT%H:%i:%S.%fZ')",
            "received_at > occurred_at", "actor_id", "actor_type", "actor_display_name",
            "actor_email", "actor_timezone", "action", "resource_type", "resource_id",
            "resource_name", "outcome", "ip", "session_id", "user_agent", "channel", "country",
            "city", "latitude", "longitude", "changes.field", "changes.old", "changes.new",
            "correlation_id", "toString(parent_event_id)", "metadata",
        ]  # fmt: skip
        rows = env.sql(f"SELECT {', '.join(columns)} FROM audit_events")
    finally:
        pipeline.stop_all()
    assert len(rows) == 1
    got = dict(zip(columns, rows[0], strict=True))
    assert got["toString(event_id)"] == str(sent.event_id)
    assert got["schema_version"] == 1
    assert got["tenant_id"] == "acme"
    assert got["formatDateTime(occurred_at, '%Y-%m-%dT%H:%i:%S.%fZ')"].startswith(
        YESTERDAY.strftime("%Y-%m-%dT08:15:30.123")
    )
    assert got["received_at > occurred_at"] == 1
    assert (got["actor_id"], got["actor_type"], got["actor_display_name"]) == (
        "usr_42", "member", "Ada Lovelace",
    )  # fmt: skip
    assert (got["actor_email"], got["actor_timezone"]) == ("ada@acme.example", "Europe/Berlin")
    assert (got["action"], got["outcome"], got["channel"]) == ("update", "success", "web")
    assert (got["resource_type"], got["resource_id"], got["resource_name"]) == (
        "project", "prj_7", "Analytical Engine",
    )  # fmt: skip
    assert (got["ip"], got["session_id"]) == ("203.0.113.9", "sess_1")
    assert got["user_agent"] == "Mozilla/5.0 (X11; Linux x86_64)"
    assert (got["country"], got["city"], got["latitude"], got["longitude"]) == (
        "DE", "Berlin", 52.52, 13.4,
    )  # fmt: skip
    assert got["changes.field"] == ["name", "budget", "tags"]
    assert [orjson.loads(v) for v in got["changes.old"]] == ["Engine", 100, ["a"]]
    assert [orjson.loads(v) for v in got["changes.new"]] == ["Analytical Engine", None, ["a", "b"]]
    assert got["correlation_id"] == "req-9"
    assert got["toString(parent_event_id)"] == "01937b2e-0000-7000-8000-000000000001"
    assert orjson.loads(got["metadata"]) == {"request_id": "r-1", "nested": {"k": [1, 2]}}


INVALID = {
    "invalid_json": b'{"tenant_id": "acme", "actor": ',
    "missing_actor": orjson.dumps(
        {
            "tenant_id": "acme",
            "action": "delete",
            "occurred_at": RECENT,
            "resource": {"type": "task", "id": "1"},
        }
    ),
    "unknown_action": orjson.dumps(
        {
            "tenant_id": "acme",
            "actor": {"id": "u1"},
            "action": "teleport",
            "occurred_at": RECENT,
            "resource": {"type": "task", "id": "1"},
        }
    ),
    "oversized": orjson.dumps(
        {
            "tenant_id": "acme",
            "actor": {"id": "u1"},
            "action": "update",
            "occurred_at": RECENT,
            "resource": {"type": "task", "id": "1"},
            "metadata": {"blob": "x" * 70_000},
        }
    ),
}
EXPECTED_REASON = {
    "invalid_json": ("invalid_json", "not JSON"),
    "missing_actor": ("invalid_event", "actor: Field required"),
    "unknown_action": ("invalid_event", "unknown action 'teleport'"),
    "oversized": ("oversized", "over the 65536-byte limit"),
}


def test_invalid_events_go_to_dead_letter_and_the_worker_keeps_going(env: Env) -> None:
    topics = env.settings.topics
    raw = Producer({"bootstrap.servers": env.bootstrap})
    valid = list(sample_events(30, seed=3))
    with _producer(env) as audit:
        for fields in valid[:15]:
            audit.emit(**fields)
        audit.flush(10)
        for name, value in INVALID.items():
            raw.produce(topics.raw, key=b"acme:u1", value=value, headers=[("case", name.encode())])
        assert raw.flush(10) == 0
        for fields in valid[15:]:  # after the bad input: the worker must still be consuming
            audit.emit(**fields)
        assert audit.flush(10) == 0

    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= 30, what="30 rows")
        dead = env.read_topic(topics.dead_letter, expected=len(INVALID))
        stored = env.scalar("SELECT count() FROM audit_events")
        pipeline.check()  # the worker is alive
    finally:
        pipeline.stop_all()

    assert stored == 30
    assert len(dead) == len(INVALID)
    by_case: dict[str, Any] = {}
    for msg in dead:
        headers = dict(msg.headers() or [])
        by_case[headers["case"].decode()] = msg
    assert set(by_case) == set(INVALID)
    for name, msg in by_case.items():
        ctx = dead_letter.read(msg.headers())
        reason, detail = EXPECTED_REASON[name]
        assert ctx["reason"] == reason, name
        assert detail in ctx["detail"], (name, ctx["detail"])
        assert msg.value() == INVALID[name], "the original bytes, untouched"
        assert msg.key() == b"acme:u1"
        assert ctx["topic"] == topics.raw
        assert int(ctx["offset"]) >= 0
        assert int(ctx["partition"]) >= 0


def test_stopping_normalizer_and_sink_mid_stream_loses_and_duplicates_nothing(env: Env) -> None:
    total = 12_000
    start = datetime.now(UTC) - timedelta(hours=1)
    done = threading.Event()

    def produce() -> None:
        with _producer(env) as audit:
            for n, fields in enumerate(sample_events(total, seed=11)):
                fields["occurred_at"] = start + timedelta(milliseconds=n)
                audit.emit(**fields)
            assert audit.flush(30) == 0
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    pipeline = env.pipeline()
    count = "SELECT count() FROM audit_events"
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar(count) >= 1_000, what="first rows")
        pipeline.stop("normalizer", kill=True)  # crash: no graceful commit
        pipeline.stop("worker", kill=True)
        pipeline.start("normalizer")
        pipeline.start("worker")
        wait_for(lambda: env.scalar(count) >= 5_000, what="rows after the normalizer restart")
        pipeline.stop("sink", kill=True)  # crash between write and commit is possible here
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar(count) >= 8_000, what="rows after the sink restart")
        pipeline.stop_all()  # and a graceful stop / start too
        pipeline.start_all()
        pipeline.wait_sink_ready()
        producer.join(120)
        assert done.is_set()
        wait_for(lambda: env.scalar(count) >= total, timeout=120, what=f"{total} rows")
        wait_for(lambda: pipeline.check() is None, timeout=2)
        rows, distinct = env.sql("SELECT count(), uniqExact(event_id) FROM audit_events")[0]
    finally:
        pipeline.stop_all()
    assert (rows, distinct) == (total, total)
