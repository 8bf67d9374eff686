"""Security teams read the alert topic with any Kafka client: kcat, and `alerts tail`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from auditstream.producers import AuditProducer, ProducerConfig

from .conftest import Env

pytestmark = pytest.mark.integration


def _mass_deletion(env: Env) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    config = ProducerConfig(bootstrap_servers=env.bootstrap, topic=env.settings.topics.raw)
    with AuditProducer(config) as audit:
        for i in range(25):
            audit.emit(
                tenant_id="acme",
                actor={"id": "usr_mallory", "display_name": "Mallory"},
                action="delete",
                resource={"type": "invoice", "id": f"inv_{i}"},
                occurred_at=start + timedelta(seconds=i),
            )
        assert audit.flush(10) == 0


def test_kcat_and_alerts_tail_read_the_alert(env: Env) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (`apt-get install kcat`; `make setup` does it as root)")
    pipeline = env.pipeline()
    try:
        pipeline.start("normalizer")
        pipeline.start("worker")
        _mass_deletion(env)
        # The README's command: every alert from the beginning, key and JSON value, then exit.
        consumed = subprocess.run(
            [kcat, "-b", env.bootstrap, "-C", "-t", env.settings.topics.alerts,
             "-o", "beginning", "-c", "1", "-f", "%k\t%s\n"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        tail = subprocess.run(
            [sys.executable, "-m", "auditstream.cli.main", "alerts", "tail",
             "--from-beginning", "--limit", "1", "--explain"],
            env={**os.environ, **env.vars, "COLUMNS": "160"},
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        pipeline.stop_all()

    key, value = consumed.stdout.strip().split("\t", 1)
    alert = orjson.loads(value)
    assert key == "acme"
    assert (alert["rule"], alert["subject"], alert["severity"]) == (
        "mass_deletion",
        "usr_mallory",
        "high",
    )
    assert len(alert["evidence_event_ids"]) == 25
    assert "mass_deletion" in tail.stdout
    assert "usr_mallory" in tail.stdout
    assert "25 deletions" in tail.stdout
