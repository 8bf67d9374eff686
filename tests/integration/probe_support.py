"""Helpers for tests that run the probe worker (``faust_probe.py``) as a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from .conftest import Env, wait_for

PROBE = Path(__file__).with_name("faust_probe.py")
PARTITIONS = 3


class Probe:
    """The probe worker as a child process; what it processed, in order."""

    def __init__(self, env: Env, home: Path) -> None:
        self.env = env
        self.out = home / "processed.txt"
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        env.settings.home.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, widen: bool = False) -> None:
        self.runs += 1
        self.out.unlink(missing_ok=True)
        log = (self.logs / f"probe-{self.runs}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(PROBE), "worker"],
            env={
                **os.environ,
                **self.env.vars,
                "PROBE_OUT": str(self.out),
                "PROBE_WIDEN": "1" if widen else "0",
                "PYTHONUNBUFFERED": "1",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, f"probe exited badly; see {self.logs}"
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def processed(self) -> list[tuple[int, int]]:
        if not self.out.exists():
            return []
        return [
            (int(p), int(o))
            for p, o in (line.split() for line in self.out.read_text().splitlines())
        ]


def produce(env: Env, count: int, start: int) -> None:
    producer = Producer({**env.settings.kafka.client_config(), "enable.idempotence": True})
    for i in range(start, start + count):
        producer.produce(
            env.settings.topics.normalized,
            key=f"acme:usr_{i % 17}".encode(),
            value=b"{}",
            partition=i % PARTITIONS,
        )
    assert producer.flush(15) == 0


def data_offsets(env: Env, isolation: str = "read_committed") -> dict[int, list[int]]:
    """Every record a consumer gets from the input topic, per partition."""
    topic = env.settings.topics.normalized
    consumer = Consumer(
        {
            **env.settings.kafka.client_config(),
            "group.id": f"check-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    try:
        ends = {}
        for p in range(PARTITIONS):
            ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        positions = dict.fromkeys(range(PARTITIONS), 0)

        def done() -> bool:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is None:
                    seen[msg.partition()].append(msg.offset())
                    positions[msg.partition()] = msg.offset() + 1
            positions.update(
                {tp.partition: tp.offset for tp in consumer.position(consumer.assignment())}
            )
            return all(positions[p] >= ends[p] for p in range(PARTITIONS))

        wait_for(done, timeout=30, interval=0, what="the input topic read to its end")
        return seen
    finally:
        consumer.close()


def committed(env: Env) -> dict[int, int]:
    """The worker group's committed offsets on the input topic (0 where none)."""
    topic = env.settings.topics.normalized
    consumer = Consumer(
        {**env.settings.kafka.client_config(), "group.id": f"{env.settings.app_id}-worker"}
    )
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in tps}
    finally:
        consumer.close()


def by_partition(pairs: list[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for partition, offset in pairs:
        out[partition].append(offset)
    return out
