"""``auditstream dlq replay``: a fixed dead letter is stored exactly once (real broker, chDB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from auditstream.pipeline import Pipeline
from auditstream.schemas import AuditEvent

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


def _cli(
    env: Env, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", *args],
        env={**os.environ, **env.vars, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _event(occurred_at: datetime) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": occurred_at.isoformat(timespec="milliseconds"),
            "tenant_id": "acme",
            "actor": {"id": "usr_1", "type": "member"},
            "action": "update",
            "resource": {"type": "invoice", "id": "INV-1"},
        }
    )


def _produce(env: Env, value: bytes, key: bytes = b"acme:usr_1") -> None:
    producer = Producer(env.settings.kafka.client_config())
    producer.produce(env.settings.topics.raw, value=value, key=key)
    assert producer.flush(10) == 0


def test_replay_stores_a_fixed_dead_letter_exactly_once(env: Env) -> None:
    # The cause: a clock-skew bound too tight for this producer (an hour ahead).
    tight = {"AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS": "60"}
    event = _event(datetime.now(UTC) + timedelta(hours=1))
    eid = str(event.event_id)
    value = orjson.dumps(event.model_dump(mode="json"))
    stored = f"SELECT count() FROM audit_events WHERE event_id = '{eid}'"

    pipeline = Pipeline(env={**os.environ, **env.vars, **tight}, settings=env.settings)
    fixed: Pipeline | None = None
    try:
        pipeline.start("sink")
        pipeline.start("normalizer")
        pipeline.wait_sink_ready()
        _produce(env, value)
        wait_for(
            lambda: env.scalar("SELECT count() FROM audit_dead_letters WHERE reason = 'in_future'"),
            what="the dead letter",
        )
        listed = _cli(env, "dlq", "list", "--json", "--reason", "in_future")
        assert listed.returncode == 0, listed.stderr
        letters = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [d["reason"] for d in letters] == ["in_future"]
        assert letters[0]["replayed"] is None

        # The fix: the default bound (a day). The normalizer restarts with it.
        pipeline.stop("normalizer")
        fixed = Pipeline(env={**os.environ, **env.vars}, settings=env.settings)
        fixed.start("normalizer")

        first = _cli(env, "dlq", "replay", "--reason", "in_future")
        assert first.returncode == 0, first.stderr
        assert "replayed 1 dead letters" in first.stdout
        wait_for(lambda: env.scalar(stored) == 1, what="the replayed event stored")

        # Replayed before: the ledger says so, nothing is sent.
        again = _cli(env, "dlq", "replay", "--all")
        assert again.returncode == 0, again.stderr
        assert "replayed 0 dead letters" in again.stdout
        assert "skipped 1 replayed before" in again.stdout

        # The same bytes replayed by other means: the stored event is not stored twice.
        _produce(env, value)
        reconciled = _cli(env, "reconcile", "--wait", "60", "--json")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
        totals: dict[str, Any] = json.loads(reconciled.stdout)["totals"]
        assert (totals["messages"], totals["stored"], totals["dead_lettered"]) == (3, 1, 1)
        assert totals["repeats"] == 1
        assert env.scalar(stored) == 1

        # What was replayed, from where, to where.
        listed = _cli(env, "dlq", "list", "--json")
        [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert letter["replayed"]["dead_letter"] == letter["position"]
        assert letter["replayed"]["replayed_to"].startswith(env.settings.topics.raw + "/")
        replayed = [
            m
            for m in env.read_topic(env.settings.topics.raw, 3)
            if dict(m.headers() or []).get("auditstream.replay.of")
        ]
        assert len(replayed) == 1
        headers = dict(replayed[0].headers() or [])
        assert headers["auditstream.replay.of"].decode() == letter["position"]
        assert headers["auditstream.replay.reason"] == b"in_future"
        assert replayed[0].value() == value
    finally:
        if fixed is not None:
            fixed.stop_all()
        pipeline.stop_all()


def test_dlq_errors_are_one_sentence(env: Env) -> None:
    bad = _cli(env, "dlq", "replay", "--since", "yesterday-ish")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "neither a time ago" in bad.stderr
    nothing = _cli(env, "dlq", "replay")
    assert nothing.returncode == 2
    assert "say what to replay" in nothing.stderr
    missing = _cli(env, "dlq", "show", "0:999999")
    assert missing.returncode == 1
    assert "no dead letter 0:999999" in missing.stderr
    assert "Traceback" not in missing.stderr
