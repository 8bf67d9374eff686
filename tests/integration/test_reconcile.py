"""reconcile against the real pipeline: a deleted row is a named gap; a row the TTL removed
after a retention change is not."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from auditstream.schemas.event import partition_key
from auditstream.sinks import store

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


def _reconcile(env: Env, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", "reconcile", "--json", *args],
        env=env.pipeline().env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.stdout, proc.stderr.decode()
    return proc.returncode, orjson.loads(proc.stdout)


def test_reconcile_names_a_deleted_row_and_accepts_a_retention_deletion(env: Env) -> None:
    env.vars["AUDITSTREAM_RETENTION_DAYS"] = "400"
    now = datetime.now(UTC)
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": "acme",
            "actor": {"id": f"usr_{i % 7}"},
            "action": "update",
            "resource": {"type": "task", "id": f"tsk_{i}"},
            # event 0 is 380 days old: inside 400 days of retention, outside 365
            "occurred_at": (now - timedelta(days=380 if i == 0 else 1, minutes=i)).isoformat(),
        }
        for i in range(30)
    ]
    producer = Producer(env.settings.kafka.client_config())
    for e in events:
        producer.produce(
            env.settings.topics.raw, orjson.dumps(e), partition_key("acme", e["actor"]["id"])
        )
    assert producer.flush(30) == 0
    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") == 30, what="30 stored")
        code, report = _reconcile(env, "--wait", "60")
        assert code == 0, report
        assert report["totals"]["stored"] == 30
    finally:
        pipeline.stop_all()

    writer = store.connect(env.settings.clickhouse)
    try:
        # an operator with write access deletes one row: reconcile must name it
        victim = events[5]["event_id"]
        writer.command(
            f"ALTER TABLE auditstream.audit_events DELETE WHERE event_id = '{victim}'",
            settings={"mutations_sync": 2},
        )
        # and retention shrinks to 365 days: the 380-day-old event goes by TTL, legitimately
        writer.command(
            "ALTER TABLE auditstream.audit_events MODIFY TTL "
            "toDateTime(occurred_at) + toIntervalDay(365)"
        )
        writer.command("OPTIMIZE TABLE auditstream.audit_events FINAL")
        assert writer.command("SELECT count() FROM auditstream.audit_events") == 28
        rows = writer.query(
            "SELECT toString(event_id), raw_partition, raw_offset FROM auditstream.audit_events"
        ).result_rows
    finally:
        writer.close()

    stored_ids = {r[0] for r in rows}
    assert victim not in stored_ids
    code, report = _reconcile(env)
    assert code == 1, report
    parts = report["partitions"]
    missing = [(p["partition"], o) for p in parts for o in p["missing"]]
    deleted_by_ttl = [(p["partition"], o) for p in parts for o in p["retention_deleted"]]
    assert len(missing) == 1, report  # the ALTER DELETE, named
    assert len(deleted_by_ttl) == 1, report  # the TTL, not a gap
    assert missing != deleted_by_ttl
    assert report["totals"]["stored"] == 28
