"""Disk-mode crash safety, and other producers: kcat with plain JSON and CloudEvents.

Both end in ClickHouse through the real worker and sink.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from auditstream.producers import AuditProducer, ProducerConfig

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import sys, time
    from auditstream.producers import AuditProducer, ProducerConfig
    bootstrap, topic, spool, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    audit = AuditProducer(ProducerConfig(bootstrap_servers=bootstrap, topic=topic,
                                         durability="disk", spool_dir=spool))
    ids = [audit.emit(tenant_id="acme", actor={"id": f"u{n % 7}"}, action="update",
                      resource={"type": "doc", "id": str(n)}, metadata={"run": sys.argv[5]})
           for n in range(count)]
    sys.stdout.write("\\n".join(ids) + "\\nEMITTED\\n")
    sys.stdout.flush()
    time.sleep(60)  # killed long before
    """
)


def test_disk_mode_survives_sigkill_right_after_emit(env: Env, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    run = uuid.uuid4().hex[:8]
    count = 3000
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, env.bootstrap, env.settings.topics.raw, str(spool),
         str(count), run],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert child.stdout is not None
    lines = []
    for raw in child.stdout:
        line = raw.decode().strip()
        if line == "EMITTED":
            child.send_signal(signal.SIGKILL)  # right after the last emit returned
            break
        lines.append(line)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert len(lines) == count
    assert any(spool.rglob("*.seg")), "the events are in the spool"

    config = ProducerConfig(
        bootstrap_servers=env.bootstrap,
        topic=env.settings.topics.raw,
        spool_dir=spool,
        durability="disk",  # type: ignore[arg-type]
    )
    with AuditProducer(config) as audit:
        assert audit.stats.recovered > 0
        assert audit.flush(60) == 0
    assert not any(spool.rglob("*.seg")), "acknowledged segments are deleted"

    pipeline = env.pipeline()
    this_run = f"JSONExtractString(metadata, 'run') = '{run}'"
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        wait_for(
            lambda: env.scalar(f"SELECT count() FROM audit_events WHERE {this_run}") >= count,
            timeout=120,
            what=f"{count} rows",
        )
        wait_for(lambda: pipeline.check() is None, timeout=2)
        rows, distinct = env.sql(
            f"SELECT count(), uniqExact(event_id) FROM audit_events WHERE {this_run}"
        )[0]
        stored = {
            r[0] for r in env.sql(f"SELECT toString(event_id) FROM audit_events WHERE {this_run}")
        }
    finally:
        pipeline.stop_all()
    assert (rows, distinct) == (count, count), "none lost, none doubled"
    assert stored == set(lines)


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "kcat"], capture_output=True, check=False)
        path = shutil.which("kcat")
    if path is None:
        pytest.skip("kcat is not installed and can't be installed here (apt-get install kcat)")
    return path


def _kcat(kcat: str, env: Env, value: bytes, key: str, headers: dict[str, str]) -> None:
    cmd = [kcat, "-P", "-b", env.bootstrap, "-t", env.settings.topics.raw, "-k", key]
    for name, text in headers.items():
        cmd += ["-H", f"{name}={text}"]
    subprocess.run(cmd, input=value, check=True, timeout=30)


def test_kcat_plain_json_and_cloudevents_land_in_clickhouse(env: Env, kcat: str) -> None:
    plain_id, binary_id = str(uuid.uuid4()), str(uuid.uuid4())
    # yesterday: within retention whenever the test runs (docs/decisions/0004)
    base = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    second = base + timedelta(seconds=1)
    third = base + timedelta(seconds=2)
    plus_one = timezone(timedelta(hours=1))
    plain = {
        "event_id": plain_id, "occurred_at": base.isoformat(), "tenant_id": "acme",
        "actor": {"id": "kcat-plain"}, "action": "deleted",
        "resource": {"type": "invoice", "id": "INV-1"},
    }  # fmt: skip
    _kcat(kcat, env, orjson.dumps(plain), "acme:kcat-plain", {})
    binary_data = {
        "tenant_id": "acme", "actor": {"id": "kcat-binary"},
        "resource": {"type": "invoice", "id": "INV-2"}, "ip": "203.0.113.7",
    }  # fmt: skip
    _kcat(
        kcat, env, orjson.dumps(binary_data), "acme:kcat-binary",
        {"ce_specversion": "1.0", "ce_id": binary_id, "ce_source": "/billing",
         "ce_type": "com.acme.invoice.updated", "ce_time": second.isoformat(),
         "content-type": "application/json"},
    )  # fmt: skip
    structured = {
        "specversion": "1.0", "id": "order-42", "source": "/shop", "type": "com.acme.order.created",
        "time": third.astimezone(plus_one).isoformat(), "tenantid": "acme",
        "datacontenttype": "application/json",
        "data": {"actor": {"id": "kcat-structured"}, "resource": {"type": "order", "id": "42"}},
    }  # fmt: skip
    _kcat(
        kcat, env, orjson.dumps(structured), "acme:kcat-structured",
        {"content-type": "application/cloudevents+json"},
    )  # fmt: skip

    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= 3, what="3 rows")
        rows = env.sql(
            "SELECT actor_id, toString(event_id), action, resource_id, ip, "
            "formatDateTime(occurred_at, '%Y-%m-%dT%H:%i:%S'), "
            "JSONExtractString(metadata, 'ce_source') FROM audit_events ORDER BY actor_id"
        )
    finally:
        pipeline.stop_all()
    got = {r[0]: r[1:] for r in rows}
    assert list(got["kcat-plain"][:3]) == [plain_id, "delete", "INV-1"]
    assert list(got["kcat-binary"]) == [
        binary_id, "update", "INV-2", "203.0.113.7", f"{second:%Y-%m-%dT%H:%M:%S}", "/billing",
    ]  # fmt: skip
    structured_row = list(got["kcat-structured"])
    assert structured_row[1:] == ["create", "42", "", f"{third:%Y-%m-%dT%H:%M:%S}", "/shop"]
    # the documented mapping: tenant, source and id (stream_jobs/cloudevents.py)
    assert structured_row[0] == str(
        uuid.uuid5(uuid.UUID("6f1c2a3e-8d4b-5b7a-9c0d-2e4f6a8b0c1d"), "acme\n/shop\norder-42")
    )
