"""The spool's framing and torn tails, privacy options, CloudEvents decoding, the diff."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from auditstream.config import ConfigError
from auditstream.producers import ProducerConfig, field_changes
from auditstream.producers.encoder import EventEncoder
from auditstream.producers.spool import Spool, SpoolFull, SpoolLocked
from auditstream.stream_jobs import cloudevents
from auditstream.stream_jobs.dedup import RecentIds
from auditstream.stream_jobs.normalize import Invalid, Normalized, Normalizer, Reason


def test_spool_replays_in_order_and_stops_at_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for n in range(10):
        spool.append(b"k", f"v{n}".encode())
    spool.close()
    last = sorted(tmp_path.glob("*.seg"))[-1]
    with last.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a torn write
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    assert again.recovered == 10
    assert again.torn_bytes == 11
    batch = again.next_batch(100)
    assert [d.value for d in batch] == [f"v{n}".encode() for n in range(10)]
    for item in batch:
        again.mark(item.segment, item.end)
    for item in batch:
        again.ack(item.segment)
    assert not list(tmp_path.glob("*.seg")), "acked segments are deleted"
    again.close()


def test_spool_is_bounded_and_locked(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024, segment_bytes=1024)
    with pytest.raises(SpoolFull):  # noqa: PT012
        for _ in range(100):
            spool.append(b"k", b"x" * 100)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=1024, segment_bytes=1024)
    spool.close()


def test_crc_mismatch_is_not_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    spool.append(b"k", b"first")
    spool.append(b"k", b"second")
    spool.close()
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    assert [d.value for d in again.next_batch(10)] == [b"first"]
    again.close()


def _encode(**settings: object) -> dict[str, object]:
    config = ProducerConfig(bootstrap_servers="x:9092", **settings)  # type: ignore[arg-type]
    prepared = EventEncoder(config).from_fields(
        {
            "tenant_id": "acme",
            "actor": {"id": "u1"},
            "action": "sign_in",
            "resource": {"type": "session", "id": "s"},
            "ip": "203.0.113.9",
            "metadata": {"Password": "hunter2", "nested": {"token": "t"}, "keep": 1},
            "changes": [{"field": "password", "old": "a", "new": "b"}],
        }
    )
    return dict(orjson.loads(prepared.value))


def test_ip_drop_hash_and_redaction() -> None:
    kept = _encode()
    assert kept["ip"] == "203.0.113.9"
    assert "ip" not in _encode(ip_policy="drop")
    hashed = _encode(ip_policy="hash", ip_hash_key="secret")
    assert "ip" not in hashed
    assert len(hashed["metadata"]["ip_hash"]) == 32  # type: ignore[index]
    assert hashed["metadata"] != _encode(ip_policy="hash", ip_hash_key="other")["metadata"]
    redacted = _encode(redact_keys=frozenset({"password", "TOKEN"}))
    assert redacted["metadata"] == {
        "Password": "[REDACTED]", "nested": {"token": "[REDACTED]"}, "keep": 1,
    }  # fmt: skip
    assert redacted["changes"] == [{"field": "password", "old": "[REDACTED]", "new": "[REDACTED]"}]


def test_hash_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ip_hash_key"):
        ProducerConfig(bootstrap_servers="x:9092", ip_policy="hash")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="durability='tape'"):
        ProducerConfig(bootstrap_servers="x:9092", durability="tape")  # type: ignore[arg-type]


def test_config_from_env() -> None:
    config = ProducerConfig.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "AUDITSTREAM_TOPIC_PREFIX": "p.",
            "AUDITSTREAM_PRODUCER_DURABILITY": "disk",
            "AUDITSTREAM_SPOOL_MAX_MB": "2",
            "AUDITSTREAM_REDACT_KEYS": "password, token",
        }
    )
    assert (config.bootstrap_servers, config.topic) == ("k:9092", "p.audit.events.raw")
    assert config.durability == "disk"
    assert config.spool_max_bytes == 2 * 1024**2
    assert config.redact_keys == {"password", "token"}
    with pytest.raises(ConfigError, match="unknown producer setting"):
        ProducerConfig.from_env({}, colour="red")


def test_field_changes() -> None:
    before = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "gone": True}
    after = {"a": 1, "b": {"c": 5, "d": 3}, "e": [1, 2], "new": "x", "ts": 9}
    assert field_changes(before, after, ignore={"ts"}) == [
        {"field": "b.c", "old": 2, "new": 5},
        {"field": "e", "old": [1], "new": [1, 2]},
        {"field": "gone", "old": True, "new": None},
        {"field": "new", "old": None, "new": "x"},
    ]
    assert field_changes({"n": 1}, {"n": 1.0}) == [{"field": "n", "old": 1, "new": 1.0}]


def _step(raw: bytes, headers: list[tuple[str, bytes]] | None = None) -> object:
    # The events below are stamped 2026-01-01: judge them by a clock of that day.
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return Normalizer(65_536, RecentIds(60, 100), now=lambda: now)(raw, headers)


def test_cloudevents_binary_structured_and_errors() -> None:
    data = {"tenant_id": "acme", "actor": {"id": "u"}, "resource": {"type": "t", "id": "1"}}
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", b"abc"), ("ce_source", b"/src"),
        ("ce_type", b"com.acme.thing.deleted"), ("ce_time", b"2026-01-01T00:00:00Z"),
    ]  # fmt: skip
    binary = _step(orjson.dumps(data), headers)
    assert isinstance(binary, Normalized)
    assert binary.event.action == "delete"
    assert binary.event.metadata == {"ce_source": "/src", "ce_type": "com.acme.thing.deleted"}
    structured = {
        "specversion": "1.0", "id": "abc", "source": "/src", "type": "x.created",
        "time": "2026-01-01T00:00:00Z", "data": data,
    }  # fmt: skip
    result = _step(orjson.dumps(structured))
    assert isinstance(result, Normalized)
    assert result.event.event_id == binary.event.event_id, "same source+id, same event id"
    assert result.event.action == "create"
    for bad, detail in [
        ({**structured, "specversion": "0.3"}, "specversion"),
        ({k: v for k, v in structured.items() if k != "source"}, "'source' is required"),
        ({**structured, "data": [1]}, "JSON object"),
        ({k: v for k, v in structured.items() if k != "data"}, "without data"),
        ({**structured, "data": None, "data_base64": "!!"}, "data_base64"),
    ]:
        outcome = _step(orjson.dumps(bad))
        assert isinstance(outcome, Invalid), bad
        assert outcome.reason is Reason.INVALID_CLOUDEVENT
        assert detail in outcome.detail
    assert cloudevents.header_map({"CE_ID": b"x"}) == {"ce_id": "x"}
