"""No restart or recovery of a Faust worker skips an input offset.

A detector-like agent (``faust_probe.py``: batches, a changelog table) runs, stops with state
in its changelog, and restarts with input already waiting. Every record of the input topic
from the committed offsets on must reach the agent once, in offset order per partition.

``widened``: the window in Faust's recovery (stream partitions fetched before their seek to
the committed offsets; the queues cleared when flow resumes) is made wide on purpose, so the
test is deterministic; ``plain``: the same restart as it happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from auditstream.infra import topics

from .conftest import Env, wait_for
from .probe_support import PARTITIONS, Probe, by_partition, committed, data_offsets, produce

pytestmark = pytest.mark.integration


@pytest.fixture
def probe(env: Env, tmp_path: Path) -> Iterator[Probe]:
    worker = Probe(env, tmp_path / "probe")
    try:
        yield worker
    finally:
        worker.kill()


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

    # Faust's own topics got the broker's default replication factor (none was configured).
    assert env.settings.topics.replication_factor is None
    bootstrap = env.settings.kafka.bootstrap_servers
    default = topics.default_replication_factor(bootstrap)
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    changelog = next(
        t for t in metadata.topics if t.endswith("probe-state-changelog") and env.run in t
    )
    assert {len(p.replicas) for p in metadata.topics[changelog].partitions.values()} == {default}
