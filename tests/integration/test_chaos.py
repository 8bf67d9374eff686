"""Chaos: a 100k-event backlog through the real pipeline while its stream processes are killed.

The normalizer and the detector worker are SIGKILLed and restarted again and again while they
work through the backlog (the detectors with table state to recover each time), and a second
detector worker joins the group and leaves it. Afterwards ``auditstream reconcile`` must
account for every raw offset, storage must hold every event id once, and every alert the
scripted attacks call for must have arrived, once.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from auditstream.pipeline import Pipeline
from auditstream.schemas.event import partition_key

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

BACKLOG = 100_000
KILLS = 10
ACTORS = 3_000
TENANTS = ("acme", "globex", "initech")
VERBS = ("update", "create", "access", "comment", "status_change", "sign_in", "sign_out")


def _ts(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(tenant: str, actor: str, action: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "tenant_id": tenant,
        "actor": {"id": actor, "type": "member"},
        "action": action,
        "resource": {"type": "task", "id": f"tsk_{uuid.uuid4().hex[:8]}"},
        "occurred_at": _ts(at),
        **extra,
    }


def _backlog(rng: random.Random, now: datetime) -> Iterator[dict[str, Any]]:
    """Ordinary work by many actors over the last 6 hours, with two attacks in it."""
    start = now - timedelta(hours=6)
    step = timedelta(hours=6) / BACKLOG
    mallory_at = BACKLOG // 2
    trudy_at = (BACKLOG * 3) // 4
    for n in range(BACKLOG):
        at = start + step * n
        if mallory_at <= n < mallory_at + 40:  # mass deletion: 40 deletes in ~2 minutes
            yield _event("acme", "usr_mallory", "delete", at)
        elif trudy_at <= n < trudy_at + 8:  # brute force: 7 failures, then a success
            ok = n == trudy_at + 7
            yield _event(
                "globex",
                "usr_trudy",
                "sign_in" if ok else "sign_in_failed",
                at,
                outcome="success" if ok else "failure",
                ip="198.51.100.77",
                resource={"type": "session", "id": "sess_trudy"},
            )
        else:
            tenant = TENANTS[n % 3]
            yield _event(tenant, f"usr_{rng.randrange(ACTORS)}", rng.choice(VERBS), at)


def _produce(env: Env, events: list[dict[str, Any]], extra: list[bytes]) -> None:
    producer = Producer(
        {**env.settings.kafka.client_config(), "enable.idempotence": True, "linger.ms": 20}
    )
    topic = env.settings.topics.raw

    def send(value: bytes, key: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value, key)
                producer.poll(0)
                return
            except BufferError:  # librdkafka's local queue is full: let it drain
                producer.poll(0.1)

    for event in events:
        send(orjson.dumps(event), partition_key(event["tenant_id"], event["actor"]["id"]))
    for value in extra:
        send(value, b"acme:usr_bad")
    assert producer.flush(60) == 0


def _reconcile(env: Env, wait: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", "reconcile", "--json", "--wait", str(wait)],
        env=env.pipeline().env,
        capture_output=True,
        timeout=wait + 300,
        check=False,
    )
    assert proc.returncode in (0, 1, 3), proc.stderr.decode()
    report: dict[str, Any] = orjson.loads(proc.stdout)
    report["exit"] = proc.returncode
    return report


def test_backlog_survives_repeated_kills_and_a_rebalance(env: Env) -> None:
    rng = random.Random(20261202)
    now = datetime.now(UTC)
    events = list(_backlog(rng, now))
    repeats = [orjson.dumps(events[i]) for i in range(0, BACKLOG, 10_000)]  # producer retries
    invalid = [b"{not json", b'{"tenant_id": "acme"}', b""]
    _produce(env, events, repeats + invalid)
    expected_ids = {(e["tenant_id"], e["event_id"]) for e in events}

    pipeline = env.pipeline()
    second = Pipeline(env=pipeline.env, settings=pipeline.settings)
    second.log_path = lambda role: pipeline.settings.home / "logs" / f"{role}-2.log"  # type: ignore[method-assign]
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        pipeline.start("normalizer")
        pipeline.start("worker")
        for kill in range(KILLS):
            time.sleep(rng.uniform(2.0, 5.0))
            pipeline.check()
            # Alternate: the normalizer mid-transaction, the worker mid-batch, or both.
            roles = [("normalizer",), ("worker",), ("normalizer", "worker")][kill % 3]
            for role in roles:
                pipeline.stop(role, kill=True)
            if kill == 3:
                second.start("worker")  # a second worker joins: the group rebalances
            if kill == 7:
                second.stop("worker")  # ... and leaves again
            for role in roles:
                pipeline.start(role)
        second.stop_all()

        report = _reconcile(env, wait=240)
        totals = report["totals"]
        assert totals["missing"] == 0, report
        assert totals["multiple"] == 0, report
        assert report["exit"] == 0, report
        assert totals["messages"] == BACKLOG + len(repeats) + len(invalid)
        assert totals["stored"] == BACKLOG
        assert totals["repeats"] == len(repeats)
        assert totals["dead_lettered"] == len(invalid)

        rows = env.sql("SELECT tenant_id, toString(event_id) FROM audit_events")
        assert len(rows) == BACKLOG  # every id once: no duplicate row
        assert {(t, i) for t, i in rows} == expected_ids

        def alerts() -> dict[tuple[str, str], int]:
            got = env.sql(
                "SELECT rule, subject, uniqExact(alert_id) FROM security_alerts "
                "WHERE subject IN ('usr_mallory', 'usr_trudy') GROUP BY rule, subject"
            )
            return {(r, s): n for r, s, n in got}

        wait_for(
            lambda: (
                {("mass_deletion", "usr_mallory"), ("brute_force", "usr_trudy")} <= set(alerts())
            ),
            timeout=120,
            what="the attacks' alerts",
        )
        assert alerts()[("mass_deletion", "usr_mallory")] == 1
        assert alerts()[("brute_force", "usr_trudy")] == 1
    finally:
        second.stop_all()
        pipeline.stop_all()
