"""The bare Faust agents the e2e bench compares the worker with, on the real broker: they
read every message of the topic once, and the relay writes each one to its scratch topic."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from auditstream.bench import faust_baseline

from .conftest import Env

pytestmark = pytest.mark.integration

COUNT = 1_500


def test_bare_agents_read_everything_and_the_relay_writes_it_all(env: Env) -> None:
    topic = env.settings.topics.raw
    producer = Producer({"bootstrap.servers": env.bootstrap})
    values = {f"event-{i}".encode() for i in range(COUNT)}
    for i, value in enumerate(sorted(values)):
        producer.produce(topic, value, key=str(i % 40).encode())
    assert producer.flush(10) == 0
    partitions = env.settings.topics.partitions

    consume = faust_baseline.measure(env.bootstrap, topic, partitions, 10**9, "consume", 120)
    assert consume.events == COUNT
    assert consume.seconds > 0
    assert consume.cpu_seconds > 0
    assert consume.rate == COUNT / consume.seconds

    relay = faust_baseline.measure(env.bootstrap, topic, partitions, 1_000, "relay", 120)
    assert relay.events >= 1_000  # the limit is checked per batch
    relayed = env.read_topic(f"{topic}.faust-relay", expected=relay.events, timeout=30)
    assert len(relayed) >= relay.events
    assert {m.value() for m in relayed} <= values


def test_an_unknown_mode_is_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="use one of consume, relay"):
        faust_baseline.measure(env.bootstrap, env.settings.topics.raw, 3, 10, "sleep")
