"""No restart or recovery of a Faust worker skips an input offset.

A detector-like agent (``faust_probe.py``: batches, a changelog table) runs, stops with state
in its changelog, and restarts with input already waiting. Every record of the input topic
from the committed offsets on must reach the agent once, in offset order per partition.

``widened``: the window in Faust's recovery (stream partitions fetched before their seek to
the committed offsets; the queues cleared when flow resumes) is made wide on purpose, so the
test is deterministic; ``plain``: the same restart as it happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

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


@pytest.fixture
def probe(env: Env, tmp_path: Path) -> Iterator[Probe]:
    worker = Probe(env, tmp_path / "probe")
    try:
        yield worker
    finally:
        worker.kill()


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


@pytest.mark.parametrize("widened", [True, False], ids=["widened", "plain"])
def test_a_restart_with_state_to_recover_and_input_waiting_skips_no_offset(
    env: Env, probe: Probe, widened: bool
) -> None:
    # First run: state in the changelog table, every offset committed at the stop.
    produce(env, 90, 0)
    probe.start()
    wait_for(lambda: len(probe.processed()) >= 90, what="the first run's 90 records")
    probe.stop()
    start = committed(env)
    assert sum(start.values()) == 90

    # Input waits; the restarted worker recovers its table first, then reads it.
    produce(env, 600, 90)
    expected = {
        p: [o for o in offsets if o >= start[p]] for p, offsets in data_offsets(env).items()
    }
    probe.start(widen=widened)
    try:
        wait_for(
            lambda: len(probe.processed()) >= sum(map(len, expected.values())),
            timeout=60,
            what="every waiting record processed",
        )
    except AssertionError:
        pass  # the comparison below says which offsets are missing
    finally:
        got = by_partition(probe.processed())
        probe.stop()

    for p in range(PARTITIONS):
        missing = sorted(set(expected[p]) - set(got[p]))
        assert not missing, f"partition {p}: offsets never processed: {missing[:20]}..."
        assert got[p] == expected[p], f"partition {p}: not once each in offset order"
    assert committed(env) == {p: expected[p][-1] + 1 for p in range(PARTITIONS)}


def test_records_of_an_aborted_transaction_never_reach_an_agent(env: Env, probe: Probe) -> None:
    producer = Producer(
        {**env.settings.kafka.client_config(), "transactional.id": f"test-{env.run}"}
    )
    producer.init_transactions(30)
    for outcome in ("commit", "abort", "commit", "abort", "commit"):
        producer.begin_transaction()
        for i in range(30):
            producer.produce(
                env.settings.topics.normalized, key=f"k{i}".encode(), value=outcome.encode(),
                partition=i % PARTITIONS,
            )  # fmt: skip
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)
    committed_data = data_offsets(env)
    every = data_offsets(env, "read_uncommitted")
    aborted = {(p, o) for p, offsets in every.items() for o in offsets} - {
        (p, o) for p, offsets in committed_data.items() for o in offsets
    }
    assert len(aborted) == 60
    want = sum(map(len, committed_data.values()))
    assert want == 90

    probe.start()
    wait_for(lambda: len(probe.processed()) >= want, what=f"{want} committed records processed")
    got = probe.processed()
    probe.stop()

    assert not aborted & set(got)
    assert by_partition(got) == committed_data  # each once, in order, control markers skipped
