"""Normalizer throughput on a backlog: the transactional loop against the old Faust agent.

    python -m auditstream.bench.normalizer [--events 100000] [--rounds 1]

Both read the same backlog of realistic raw events (``producers/sample.py`` traffic, ~600
bytes each, every one a fresh event id), each from its own copy of the raw topic, one after
the other on the same broker and machine. A normalizer runs as its own child process with a
fresh consumer group; the clock starts when its group first commits (so process start-up and
the group join are left out) and stops when its committed offsets reach the end of the raw
topic. ``events/s`` = events committed in between / seconds; CPU is the child's user +
system time over its whole life (start-up included), per event of the backlog.

Uses ``KAFKA_BOOTSTRAP_SERVERS``, else the local broker (``auditstream kafka up``). Topics
are created under a fresh prefix and deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from auditstream.config import Settings
from auditstream.infra import topics as topic_admin
from auditstream.producers.sample import events as sample_events

KINDS = ("loop", "faust")


@dataclass(frozen=True)
class Figures:
    kind: str
    events: int
    seconds: float
    cpu_seconds: float
    backlog: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds * 1e6 / self.backlog if self.backlog else 0.0


def backlog(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` raw events (key, JSON), each with its own id."""
    out = []
    template = list(sample_events(min(count, 20_000), seed=5))
    for n in range(count):
        fields: dict[str, Any] = dict(template[n % len(template)])
        fields["event_id"] = str(uuid.uuid4())
        key = f"{fields['tenant_id']}:{fields['actor']['id']}".encode()
        out.append((key, orjson.dumps(fields)))
    return out


def produce(client: dict[str, Any], topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({**client, "linger.ms": 20, "enable.idempotence": True})
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the backlog was not fully delivered")


def _ends(client: dict[str, Any], topic: str) -> dict[int, int]:
    consumer = Consumer({**client, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


def _committed(client: dict[str, Any], group: str, topic: str, parts: list[int]) -> int:
    consumer = Consumer({**client, "group.id": group, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
    except KafkaException:
        return 0
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in got)


def measure(
    kind: str, settings: Settings, prefix: str, env: dict[str, str], timeout: float = 600.0
) -> Figures:
    client = settings.kafka.client_config()
    run_settings = Settings.from_env({**env, "AUDITSTREAM_TOPIC_PREFIX": prefix})
    raw = run_settings.topics.raw
    ends = _ends(client, raw)
    total = sum(ends.values())
    app_id = prefix.rstrip(".") + "-app"  # its Faust topics go with the run's
    group = f"{app_id}-normalizer" if kind == "loop" else f"{app_id}-worker"
    module = (
        ["auditstream.cli.main", "normalizer"]
        if kind == "loop"
        else ["auditstream.bench.faust_normalizer"]
    )
    with tempfile.TemporaryDirectory(prefix="auditstream-bench-normalizer-") as home:
        child_env = {
            **env,
            "AUDITSTREAM_TOPIC_PREFIX": prefix,
            "AUDITSTREAM_APP_ID": app_id,
            "AUDITSTREAM_HOME": home,
            "PYTHONUNBUFFERED": "1",
        }
        with (Path(home) / "child.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", *module],
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                first_at, first = None, 0
                deadline = time.monotonic() + timeout
                done = 0
                while time.monotonic() < deadline and proc.poll() is None:
                    done = _committed(client, group, raw, list(ends))
                    now = time.monotonic()
                    if first_at is None and done > 0:
                        first_at, first = now, done
                    if done >= total:
                        break
                    time.sleep(0.1)
                end_at = time.monotonic()
            finally:
                proc.send_signal(signal.SIGTERM)
                _, _, usage = os.wait4(proc.pid, 0)
                proc.returncode = 0
        if first_at is None or done < total:
            tail = (Path(home) / "child.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {kind} normalizer did not finish ({done}/{total}):\n{tail}")
    return Figures(kind, done - first, end_at - first_at, usage.ru_utime + usage.ru_stime, total)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    settings = Settings.from_env(env)
    client = settings.kafka.client_config()
    security = settings.kafka.security.librdkafka()
    run = uuid.uuid4().hex[:8]
    messages = backlog(args.events)
    size = sum(len(v) for _, v in messages) / len(messages)
    print(f"backlog: {len(messages):,} raw events, {size:.0f} bytes each on average")
    results: list[Figures] = []
    try:
        for rnd in range(args.rounds):
            for kind in KINDS:
                prefix = f"benchnorm{run}.{kind}{rnd}."
                topics = Settings.from_env({**env, "AUDITSTREAM_TOPIC_PREFIX": prefix}).topics
                topic_admin.ensure_topics(
                    settings.kafka.bootstrap_servers, topics, security=security
                )
                produce(client, topics.raw, messages)
                figures = measure(kind, settings, prefix, env)
                results.append(figures)
                print(
                    f"round {rnd + 1} {kind:5}: {figures.rate:8,.0f} events/s "
                    f"({figures.events:,} events in {figures.seconds:.2f} s after the first "
                    f"commit), CPU {figures.cpu_us_per_event:.0f} us/event"
                )
    finally:
        topic_admin.delete_topics_with(
            settings.kafka.bootstrap_servers, f"benchnorm{run}", security
        )


if __name__ == "__main__":
    main()
