"""The transactional normalizer process on the real broker: exactly-once accounting of raw
offsets across crashes, near-limit messages, repeats, clean stop."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from auditstream.stream_jobs import dead_letter
from auditstream.stream_jobs.outputs import (
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_SIZE,
    DLQ_TRUNCATED,
)

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


def _event(event_id: uuid.UUID | None = None, actor: str = "u1") -> bytes:
    return orjson.dumps(
        {
            "event_id": str(event_id or uuid.uuid4()),
            "occurred_at": "2026-11-20T10:00:00Z",
            "tenant_id": "acme",
            "actor": {"id": actor},
            "action": "delete",
            "resource": {"type": "task", "id": "t1"},
        }
    )


def _produce(env: Env, messages: list[tuple[bytes, bytes]], **conf: Any) -> None:
    producer = Producer({**env.settings.kafka.client_config(), "linger.ms": 20, **conf})
    for key, value in messages:
        while True:
            try:
                producer.produce(env.settings.topics.raw, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0


def _raw_ends(env: Env) -> dict[int, int]:
    consumer = Consumer({**env.settings.kafka.client_config(), "group.id": f"x-{uuid.uuid4()}"})
    try:
        topic = env.settings.topics.raw
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


def _committed(env: Env) -> dict[int, int]:
    """The normalizer group's committed offsets on the raw topic (0 where none yet)."""
    consumer = Consumer(
        {
            **env.settings.kafka.client_config(),
            "group.id": f"{env.settings.app_id}-normalizer",
            "enable.auto.commit": False,
        }
    )
    try:
        topic = env.settings.topics.raw
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        try:
            got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        except KafkaException:  # the group coordinator still loading: no answer yet
            return {}
        return {tp.partition: max(tp.offset, 0) for tp in got}
    finally:
        consumer.close()


def _sources(env: Env, topic: str) -> list[tuple[int, int]]:
    """(partition, offset) on the raw topic of every committed message of ``topic``."""
    consumer = Consumer(
        {
            **env.settings.kafka.client_config(),
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[tuple[int, int]] = []
    at_end: set[int] = set()
    try:
        while len(at_end) < len(parts):
            for msg in consumer.consume(500, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() == err._PARTITION_EOF:
                        at_end.add(msg.partition() or 0)
                    continue
                h = dict(msg.headers() or [])
                assert h["auditstream.source.topic"] == env.settings.topics.raw.encode()
                out.append(
                    (int(h["auditstream.source.partition"]), int(h["auditstream.source.offset"]))
                )
    finally:
        consumer.close()
    return out


def test_sigkill_mid_backlog_leaves_every_raw_offset_in_exactly_one_output(env: Env) -> None:
    total = 12_000
    messages: list[tuple[bytes, bytes]] = []
    repeated: list[uuid.UUID] = []
    for n in range(total):
        actor = f"u{n % 50}"
        key = f"acme:{actor}".encode()
        if n % 97 == 0:
            messages.append((key, b'{"broken": '))  # dead-lettered
        elif n % 89 == 0 and repeated:
            messages.append((key, _event(repeated[-1], actor)))  # a repeat
        else:
            eid = uuid.uuid4()
            repeated.append(eid)
            messages.append((key, _event(eid, actor)))
    _produce(env, messages)
    ends = _raw_ends(env)
    assert sum(ends.values()) == total
    pipeline = env.pipeline()
    try:
        # Kill at fixed points of progress (not of time): after a fifth, two fifths... of
        # the backlog has been committed, with the normalizer busy on the rest.
        for kills in range(1, 4):
            pipeline.start("normalizer")
            wait_for(
                lambda k=kills: sum(_committed(env).values()) >= k * total // 5,
                timeout=120,
                what=f"progress before kill {kills}",
            )
            pipeline.stop("normalizer", kill=True)
        # The third instance may have finished the backlog before its kill landed, so wait
        # for the fourth to be running its loop: a SIGTERM during start-up is another case.
        log = pipeline.log_path("normalizer")

        def started() -> int:
            return log.read_text().count(", writing in transactions as")

        before = started()
        pipeline.start("normalizer")
        wait_for(lambda: started() > before, timeout=120, what="the fourth normalizer running")
        wait_for(lambda: _committed(env) == ends, timeout=180, what="the whole backlog")
        assert pipeline.stop("normalizer") == 0  # and a clean stop
    finally:
        pipeline.stop_all()
    topics = env.settings.topics
    found = Counter(
        _sources(env, topics.normalized)
        + _sources(env, topics.dead_letter)
        + _sources(env, topics.repeats)
    )
    expected = {(p, o) for p, end in ends.items() for o in range(end)}
    missing = expected - set(found)
    twice = {k: v for k, v in found.items() if v > 1}
    assert not missing, f"{len(missing)} raw offsets in no output, e.g. {sorted(missing)[:5]}"
    assert not twice, f"{len(twice)} raw offsets in two outputs, e.g. {sorted(twice)[:5]}"
    assert set(found) == expected
    log = pipeline.log_path("normalizer").read_text()
    assert "Traceback" not in log


def test_a_near_limit_message_is_dead_lettered_truncated(env: Env) -> None:
    value = b'{"blob": "' + b"x" * (1_048_000 - 12) + b'"}'
    assert len(value) == 1_048_000
    after = _event()
    _produce(
        env, [(b"acme:big", value), (b"acme:u1", after)], **{"message.max.bytes": 1_100_000}
    )  # the broker's own limit is 1,048,588 bytes: this is legal
    pipeline = env.pipeline()
    try:
        pipeline.start("normalizer")
        dead = wait_for(
            lambda: env.read_topic(env.settings.topics.dead_letter, 1, timeout=5),
            timeout=60,
            what="the dead letter",
        )
        normalized = env.read_topic(env.settings.topics.normalized, 1, timeout=30)
    finally:
        pipeline.stop_all()
    assert len(dead) == 1
    msg = dead[0]
    headers = dict(msg.headers() or [])
    context = dead_letter.read(msg.headers())
    assert context["reason"] == "oversized"
    assert headers[DLQ_ORIGINAL_SIZE] == b"1048000"
    assert headers[DLQ_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert headers[DLQ_TRUNCATED] == b"value"
    stored = msg.value() or b""
    assert 900_000 < len(stored) < len(value)
    assert value.startswith(stored)
    assert msg.key() == b"acme:big"
    assert len(normalized) == 1  # and the event after it was not lost


def test_a_repeat_produces_a_repeats_record_and_stop_is_clean(env: Env) -> None:
    kept = uuid.uuid4()
    _produce(env, [(b"acme:u1", _event(kept)), (b"acme:u1", _event(kept))])
    pipeline = env.pipeline()
    try:
        pipeline.start("normalizer")
        repeats = wait_for(
            lambda: env.read_topic(env.settings.topics.repeats, 1, timeout=5),
            timeout=60,
            what="the repeat record",
        )
        normalized = env.read_topic(env.settings.topics.normalized, 1, timeout=10)
        code = pipeline.stop("normalizer")
    finally:
        pipeline.stop_all()
    assert code == 0
    assert len(normalized) == 1
    assert len(repeats) == 1
    body = orjson.loads(repeats[0].value() or b"")
    raw_partition = normalized[0].headers()
    assert body["tenant_id"] == "acme"
    assert body["event_id"] == str(kept)
    assert body["source_topic"] == env.settings.topics.raw
    assert body["stage"] == "normalizer"
    assert body["source_offset"] == 1
    assert dict(raw_partition or [])["auditstream.source.offset"] == b"0"
    log = pipeline.log_path("normalizer").read_text()
    starts = [line for line in log.splitlines() if line.startswith("normalizer: Kafka at")]
    assert len(starts) == 1
    assert env.bootstrap in starts[0]
    assert "normalizer stopped: 1 normalized, 0 dead-lettered, 1 repeats" in log
    assert "Traceback" not in log


def test_a_repeat_with_a_huge_key_is_recorded_and_the_loop_goes_on(env: Env) -> None:
    kept = uuid.uuid4()
    big = b"K" * 1_040_000  # the broker accepts up to 1,048,588 bytes
    after = _event(actor="u2")
    # Idempotent: the big record goes in a request of its own, and a plain producer's retry
    # of the first request can land it after the second (or twice), making u1 the "repeat".
    producer = Producer(
        {
            **env.settings.kafka.client_config(),
            "message.max.bytes": 1_100_000,
            "enable.idempotence": True,
        }
    )
    for key, value in [(b"acme:u1", _event(kept)), (big, _event(kept)), (b"acme:u2", after)]:
        producer.produce(env.settings.topics.raw, value=value, key=key, partition=0)
    assert producer.flush(60) == 0
    pipeline = env.pipeline()
    try:
        pipeline.start("normalizer")
        repeats = wait_for(
            lambda: env.read_topic(env.settings.topics.repeats, 1, timeout=5),
            timeout=60,
            what="the repeat record",
        )
        normalized = env.read_topic(env.settings.topics.normalized, 2, timeout=30)
        code = pipeline.stop("normalizer")
    finally:
        pipeline.stop_all()
    assert code == 0
    assert len(repeats) == 1
    assert repeats[0].key() == hashlib.sha256(big).hexdigest().encode()
    assert orjson.loads(repeats[0].value() or b"")["event_id"] == str(kept)
    assert len(normalized) == 2  # the event after it was not held up
    log = pipeline.log_path("normalizer").read_text()
    assert "(0 aborted and redone)" in log


def test_two_processes_with_one_instance_id_do_not_fence_each_other_for_ever(
    env: Env, tmp_path: Any
) -> None:
    import os

    from auditstream.config import Settings
    from auditstream.pipeline import Pipeline

    same = {**os.environ, **env.vars, "AUDITSTREAM_NORMALIZER_INSTANCE": "twin"}
    first = Pipeline(env=same, settings=Settings.from_env(same))
    other_env = {**same, "AUDITSTREAM_HOME": str(tmp_path / "other")}
    second = Pipeline(env=other_env, settings=Settings.from_env(other_env))
    producer = Producer(env.settings.kafka.client_config())
    sent = 0

    def one_more() -> None:  # both keep having work, so both keep using their ids
        nonlocal sent
        producer.produce(env.settings.topics.raw, value=_event(), key=b"acme:u1")
        producer.flush(10)
        sent += 1

    def exited() -> list[Pipeline]:
        one_more()
        return [p for p in (first, second) if p.procs["normalizer"].poll() is not None]

    try:
        first.start("normalizer")
        wait_for(lambda: (one_more(), sum(_committed(env).values()))[1] > 0, timeout=60)
        second.start("normalizer")
        (gone,) = wait_for(exited, timeout=120, what="one of the twins to give up")
        alive = second if gone is first else first
        assert gone.procs["normalizer"].returncode == 1
        text = gone.log_path("normalizer").read_text()
        assert "normalizer instance id twin is in use by another running process" in text
        assert "AUDITSTREAM_NORMALIZER_INSTANCE" in text
        ends = _raw_ends(env)
        wait_for(lambda: _committed(env) == ends, timeout=120, what="the survivor's progress")
        assert alive.stop("normalizer") == 0
    finally:
        first.stop_all()
        second.stop_all()
    topics = env.settings.topics
    found = Counter(_sources(env, topics.normalized) + _sources(env, topics.repeats))
    expected = {(p, o) for p, end in ends.items() for o in range(end)}
    assert set(found) == expected
    assert max(found.values()) == 1
