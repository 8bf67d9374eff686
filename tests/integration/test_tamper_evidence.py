"""Tamper evidence on the real broker and chDB: the sink chains and checkpoints what it
stores; ``auditstream verify`` names what an attacker with write access to the store changed,
tells TTL expiry from deletion, and exports verify offline with only the public key."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from auditstream.infra import topics
from auditstream.integrity.export import verify_export
from auditstream.integrity.keys import KeyStore, load_public_keys
from auditstream.schemas import AuditEvent
from auditstream.schemas.codec import encode

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)


@pytest.fixture
def tenv(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Env]:
    environment = Env(
        kafka_bootstrap,
        tmp_path / "home",
        {"AUDITSTREAM_CHECKPOINT_SECONDS": "1", "AUDITSTREAM_RETENTION_DAYS": "30"},
    )
    yield environment
    topics.delete_topics_with(kafka_bootstrap, environment.run, environment.security)


def make(tenant: str, n: int, when: datetime = TODAY, first: int = 0) -> list[AuditEvent]:
    return [
        AuditEvent(
            event_id=uuid.uuid4(),
            tenant_id=tenant,
            occurred_at=when + timedelta(seconds=first + i),
            received_at=when + timedelta(seconds=first + i, milliseconds=7),
            actor={"id": f"u{i % 2}", "display_name": "Ada"},
            action="update",
            resource={"type": "invoice", "id": f"INV-{first + i}"},
            changes=[{"field": "amount", "old": i, "new": i + 1}],
            location={"country": "DE", "latitude": 52, "longitude": 13.4},
            metadata={"n": first + i},
        )
        for i in range(n)
    ]


def produce(env: Env, events: list[AuditEvent], first_offset: int) -> None:
    """To partition 0 of the normalized topic, as the normalizer would (source headers)."""
    producer = Producer({"bootstrap.servers": env.bootstrap})
    for i, ev in enumerate(events):
        producer.produce(
            env.settings.topics.normalized,
            key=ev.key,
            value=encode(ev),
            partition=0,
            headers=[
                ("auditstream.source.topic", env.settings.topics.raw.encode()),
                ("auditstream.source.partition", b"0"),
                ("auditstream.source.offset", str(first_offset + i).encode()),
            ],
        )
    assert producer.flush(15) == 0


def cli(env: Env, *args: str) -> tuple[int, str]:
    import os

    done = subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", *args],
        env={**os.environ, **env.vars, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


ATTACKER = """
import sys
from auditstream.config import ClickHouseSettings
from auditstream.sinks import store
client = store.open_admin(ClickHouseSettings(dsn=sys.argv[1]))
for statement in sys.argv[2:]:
    client.command(statement, settings={"mutations_sync": 2})
"""


def attack(env: Env, *statements: str) -> None:
    """Statements run directly on the store (the sink stopped), as an attacker would."""
    subprocess.run(
        [sys.executable, "-c", ATTACKER, env.settings.clickhouse.dsn, *statements],
        check=True,
        timeout=120,
    )


def stored_count(env: Env) -> int:
    return int(env.scalar("SELECT count() FROM audit_events"))


def run_sink_until(env: Env, count: int, *batches: tuple[list[AuditEvent], int]) -> None:
    pipeline = env.pipeline()
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        for events, offset in batches:
            produce(env, events, offset)
        wait_for(lambda: stored_count(env) >= count, what=f"{count} events stored")
    finally:
        pipeline.stop("sink")  # signs the last heads as it stops


def test_verify_names_each_record_an_attacker_changed(tenv: Env) -> None:
    acme, globex = make("acme", 8), make("globex", 4)
    run_sink_until(tenv, 12, (acme, 0), (globex, 100))
    code, out = cli(tenv, "verify")
    assert code == 0, out
    assert "acme: 1 chains, 8 records, 8 verified: OK" in out

    db = f"`{tenv.settings.clickhouse.database}`.`audit_events`"
    ids = [str(e.event_id) for e in acme]  # seq 1..8 in production order
    attack(
        tenv,
        f"ALTER TABLE {db} UPDATE action = 'read' WHERE event_id = '{ids[1]}'",
        f"ALTER TABLE {db} DELETE WHERE event_id = '{ids[3]}'",
        f"INSERT INTO {db} SELECT * REPLACE ('{uuid.UUID(int=7)}' AS event_id) "
        f"FROM (SELECT * FROM {db} WHERE event_id = '{ids[5]}') SETTINGS insert_deduplicate = 0",
        f"ALTER TABLE {db} UPDATE chain_seq = if(chain_seq = 7, 8, 7) "
        "WHERE tenant_id = 'acme' AND chain_seq IN (7, 8)",
    )
    code, out = cli(tenv, "verify")
    assert code == 1, out
    lines = [line.strip() for line in out.splitlines()]
    day = f"{TODAY:%Y-%m-%d}"
    assert f"MODIFIED chain acme/p0/{day} seq 2 event {ids[1]}: " in "\n".join(lines)
    assert any(line.startswith(f"DELETED chain acme/p0/{day} seq 4:") for line in lines), out
    assert any(
        f"INSERTED chain acme/p0/{day} seq 6 event {uuid.UUID(int=7)}" in x for x in lines
    ), out
    assert any(f"REORDERED chain acme/p0/{day} seq 7 event {ids[6]}" in x for x in lines), out
    assert any(f"REORDERED chain acme/p0/{day} seq 8 event {ids[7]}" in x for x in lines), out
    assert "globex: 1 chains, 4 records, 4 verified: OK" in out
    assert len([x for x in lines if x.split(" ")[0] in ("MODIFIED", "DELETED", "INSERTED")]) == 3

    alerts = [orjson.loads(m.value()) for m in tenv.read_topic(tenv.settings.topics.alerts, 1, 20)]
    assert [(a["rule"], a["tenant_id"], a["severity"]) for a in alerts] == [
        ("log_tampering", "acme", "critical")
    ]

    # The sink's own scheduled verification finds the same.
    tenv.vars["AUDITSTREAM_VERIFY_INTERVAL_SECONDS"] = "1"
    pipeline = tenv.pipeline()
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        log = pipeline.log_path("sink")
        wait_for(
            lambda: f"log tampering: MODIFIED chain acme/p0/{day} seq 2" in log.read_text(),
            what="the scheduled verification",
        )
        # And the command, through the running sink (it owns the store).
        code, out = cli(tenv, "verify", "--no-alert")
        assert code == 1, out
        assert f"MODIFIED chain acme/p0/{day} seq 2 event {ids[1]}: " in out
    finally:
        pipeline.stop("sink")


def reset_sink_offsets(env: Env) -> None:
    """Make the (stopped) events loop read its topic again from the start."""
    consumer = Consumer(
        {"bootstrap.servers": env.bootstrap, "group.id": f"{env.settings.app_id}-sink"}
    )
    try:
        topic = env.settings.topics.normalized
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.commit(offsets=[TopicPartition(topic, p, 0) for p in parts], asynchronous=False)
    finally:
        consumer.close()


def test_a_chain_survives_a_crash_a_restart_and_a_replayed_batch(tenv: Env) -> None:
    first, second, third = make("acme", 5), make("acme", 4, first=5), make("acme", 3, first=9)
    pipeline = tenv.pipeline()
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        produce(tenv, first, 0)
        wait_for(lambda: stored_count(tenv) >= 5, what="the first batch")
        pipeline.stop("sink", kill=True)  # a crash: maybe before its commit or checkpoint
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        produce(tenv, second, 5)
        produce(tenv, first[:2], 0)  # the same raw positions again: redeliveries
        repeat = first[2].model_copy(update={"received_at": TODAY})
        produce(tenv, [repeat], 50)  # the same event from another raw offset: a repeat
        wait_for(lambda: stored_count(tenv) >= 9, what="the second batch")
        wait_for(lambda: int(tenv.scalar("SELECT count() FROM audit_repeats")) >= 1, what="repeat")
    finally:
        pipeline.stop("sink")
    reset_sink_offsets(tenv)  # the whole topic is replayed on the next start
    run_sink_until(tenv, 12, (third, 9))
    seqs = tenv.sql("SELECT chain_seq, event_id FROM audit_events ORDER BY chain_seq")
    assert [int(s) for s, _ in seqs] == list(range(1, 13))
    assert [str(e) for _, e in seqs] == [str(e.event_id) for e in first + second + third]
    code, out = cli(tenv, "verify", "--from-topic")  # the checkpoint topic's copy
    assert code == 0, out
    assert "acme: 1 chains, 12 records, 12 verified: OK" in out


FORGER = """
import sys, uuid
from auditstream.config import ClickHouseSettings
from auditstream.integrity.verify import SELECT_LIST, as_record
from auditstream.schemas.record import record_hash
from auditstream.sinks import store
dsn, db, tenant, forged_id = sys.argv[1:]
client = store.open_admin(ClickHouseSettings(dsn=dsn))
table = f"`{db}`.`audit_events`"
head = client.query(
    f"SELECT {SELECT_LIST} FROM {table} WHERE tenant_id = '{tenant}' "
    "ORDER BY chain_seq DESC LIMIT 1"
).result_rows[0]
record = as_record(head)
forged = {**record, "event_id": forged_id, "chain_seq": record["chain_seq"] + 1,
          "chain_prev": record["record_hash"]}
digest = record_hash(forged)
client.command(
    f"INSERT INTO {table} SELECT * REPLACE ('{forged_id}' AS event_id, "
    f"{forged['chain_seq']} AS chain_seq, '{record['record_hash']}' AS chain_prev, "
    f"'{digest}' AS record_hash, now64(3) AS stored_at) FROM (SELECT * FROM {table} "
    f"WHERE tenant_id = '{tenant}' AND chain_seq = {record['chain_seq']}) "
    "SETTINGS insert_deduplicate = 0"
)
print(record["chain_seq"] + 1)
"""


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "killed"])
def test_the_sink_never_extends_a_head_someone_added_to_the_store(tenv: Env, crash: bool) -> None:
    """Review finding H2. Someone with write access to the store (not to the sink's home)
    appends a row that links correctly to a chain's head, then the sink starts again: it
    must not continue (and then sign) the chain from that row, whether it stopped cleanly
    (its heads signed) or was killed (its heads only in its write-ahead journal)."""
    first, later = make("acme", 5), make("acme", 3, first=5)
    pipeline = tenv.pipeline()
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        produce(tenv, first, 0)
        wait_for(lambda: stored_count(tenv) >= 5, what="the first events")
    finally:
        pipeline.stop("sink", kill=crash)
    forged_id = str(uuid.UUID(int=99))
    forged = subprocess.run(
        [sys.executable, "-c", FORGER, tenv.settings.clickhouse.dsn,
         tenv.settings.clickhouse.database, "acme", forged_id],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert forged.stdout.strip() == "6"
    run_sink_until(tenv, 9, (later, 5))
    rows = tenv.sql("SELECT chain_seq, toString(event_id) FROM audit_events ORDER BY chain_seq")
    ours = [int(seq) for seq, event in rows if event in {str(e.event_id) for e in later}]
    assert ours == [6, 7, 8], rows  # continued from the sink's own head, not the forged row
    log = tenv.pipeline().log_path("sink").read_text()
    assert "is not one this sink wrote" in log
    code, out = cli(tenv, "verify", "--no-alert")
    assert code == 1, out
    assert forged_id in out, out


def test_retention_is_not_tampering_and_exports_verify_offline(tenv: Env, tmp_path: Path) -> None:
    old = make("acme", 3, when=TODAY - timedelta(days=20))
    recent, other = make("acme", 4, first=10), make("globex", 2)
    run_sink_until(tenv, 9, (old, 0), (recent, 10), (other, 20))

    key = tmp_path / "auditor.pem"  # what `auditstream keys export` writes
    key.write_text(KeyStore.at_home(tenv.settings.home).export())
    export = tmp_path / "acme.jsonl"
    span = ("--from", f"{TODAY - timedelta(days=25):%Y-%m-%d}", "--to", f"{TODAY:%Y-%m-%d}T23:00")
    code, out = cli(tenv, "export", "--tenant", "acme", *span, str(export))
    assert code == 0, out
    lines = export.read_bytes().splitlines(keepends=True)
    assert b"globex" not in b"".join(lines)
    assert cli(tenv, "verify-export", str(export), "--public-key", str(key))[0] == 0

    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join([*lines[:5], lines[5].replace(b"INV-", b"INV-9"), *lines[6:]]))
    code, out = cli(tenv, "verify-export", str(edited), "--public-key", str(key))
    assert (code, "MODIFIED" in out) == (1, True), out
    # The same check in this process (what the command runs), for a removed line.
    [finding] = verify_export(
        lines[:2] + lines[3:], load_public_keys(key.read_text())
    ).all_findings()
    assert finding.kind == "deleted"

    code, out = cli(tenv, "retention", "set", "10", "--yes")
    assert code == 0, out
    db = f"`{tenv.settings.clickhouse.database}`.`audit_events`"
    attack(tenv, f"OPTIMIZE TABLE {db} FINAL")  # the TTL runs now, not at some merge
    assert stored_count(tenv) == 6  # the 20-day-old events are gone
    code, out = cli(tenv, "verify")
    assert code == 0, out
    assert "3 expired" in out
    attack(tenv, f"ALTER TABLE {db} DELETE WHERE event_id = '{recent[1].event_id}'")
    code, out = cli(tenv, "verify", "--tenant", "acme")
    assert (code, "DELETED" in out) == (1, True), out


OLD_STORE = """
import sys, dataclasses
from auditstream.config import ClickHouseSettings
from auditstream.schemas import AuditEvent
from auditstream.schemas.codec import encode
from auditstream.sinks import store, tables
from auditstream.sinks.rows import to_row

settings = ClickHouseSettings(dsn=sys.argv[1])
store.private_dir(settings.embedded_path)
client = store._open(settings)
client.command(f"CREATE DATABASE IF NOT EXISTS `{settings.database}`")
old = dataclasses.replace(tables.EVENTS, columns=tables.EVENTS.columns[:-3])
client.command(tables._ddl(old, settings.database, 30))
events = [AuditEvent.model_validate_json(line) for line in sys.argv[2:]]
rows = [to_row(encode(e), 0, 1000 + i)[:-3] for i, e in enumerate(events)]
client.insert(f"`{settings.database}`.`audit_events`", rows, column_names=list(old.column_names))
"""


def test_a_store_made_before_tamper_evidence_is_upgraded(tenv: Env) -> None:
    before = make("acme", 2, first=50)
    subprocess.run(
        [sys.executable, "-c", OLD_STORE, tenv.settings.clickhouse.dsn]
        + [e.model_dump_json() for e in before],
        check=True,
        timeout=120,
    )
    run_sink_until(tenv, 5, (make("acme", 3), 0))  # adds the columns, counts the old rows
    seqs = tenv.sql("SELECT chain_seq FROM audit_events ORDER BY chain_seq")
    assert [int(s) for (s,) in seqs] == [0, 0, 1, 2, 3]
    code, out = cli(tenv, "verify")
    assert code == 0, out
    db = f"`{tenv.settings.clickhouse.database}`.`audit_events`"
    attack(
        tenv,
        f"INSERT INTO {db} SELECT * REPLACE ('{uuid.UUID(int=5)}' AS event_id) FROM "
        f"(SELECT * FROM {db} WHERE event_id = '{before[0].event_id}') "
        "SETTINGS insert_deduplicate = 0",
    )
    code, out = cli(tenv, "verify")
    assert code == 1, out
    assert f"event {uuid.UUID(int=5)}: a record in no chain" in out


def test_records_added_above_a_signed_head_are_insertions_not_pending(tenv: Env) -> None:
    """Review finding H1 (store side): a record appended after a chain's signed head, with a
    hash the attacker computed, was "not yet checkpointed" forever. Received long before the
    last checkpoint, it is an insertion."""
    from auditstream.integrity.verify import SELECT_LIST, as_record
    from auditstream.schemas.record import record_hash

    run_sink_until(tenv, 3, (make("acme", 3, when=TODAY - timedelta(hours=1)), 0))
    db = f"`{tenv.settings.clickhouse.database}`.`audit_events`"
    forged = uuid.UUID(int=41)
    attack(
        tenv,
        f"INSERT INTO {db} SELECT * REPLACE ('{forged}' AS event_id, chain_seq + 1 AS chain_seq, "
        f"record_hash AS chain_prev, 'attacker' AS actor_id) FROM "
        f"(SELECT * FROM {db} WHERE chain_seq = 3) SETTINGS insert_deduplicate = 0",
    )
    [row] = tenv.sql(f"SELECT {SELECT_LIST} FROM {db} WHERE event_id = '{forged}'")
    digest = record_hash(as_record(row))
    attack(tenv, f"ALTER TABLE {db} UPDATE record_hash = '{digest}' WHERE event_id = '{forged}'")
    code, out = cli(tenv, "verify", "--no-alert")
    assert code == 1, out
    assert (
        f"INSERTED chain acme/p0/{TODAY - timedelta(hours=1):%Y-%m-%d} seq 4 event {forged}" in out
    )
    assert "not yet checkpointed" not in out


def test_a_lost_home_does_not_turn_a_shortened_ttl_into_expiry(tenv: Env) -> None:
    """Review finding H3. The sink's local checkpoint file is lost (a new volume, a wiped
    home); meanwhile someone shortened the TTL directly in ClickHouse and removed the old
    rows. Starting again, the sink must take the retention history from the checkpoint topic
    (its copy outside the home), not sign the shortened TTL as the store's "initial" one: the
    removed rows are deletions, not expiry."""
    old, recent = make("acme", 3, when=TODAY - timedelta(days=20)), make("acme", 2, first=10)
    run_sink_until(tenv, 5, (old, 0), (recent, 10))
    (tenv.settings.home / "checkpoints" / "checkpoints.jsonl").unlink()
    db = f"`{tenv.settings.clickhouse.database}`.`audit_events`"
    attack(
        tenv,
        f"ALTER TABLE {db} MODIFY TTL toDateTime(occurred_at) + INTERVAL 10 DAY DELETE",
        f"OPTIMIZE TABLE {db} FINAL",
    )
    assert stored_count(tenv) == 2
    run_sink_until(tenv, 3, (make("acme", 1, first=20), 12))
    log = tenv.pipeline().log_path("sink").read_text()
    assert "changed outside `auditstream retention set`" in log
    code, out = cli(tenv, "verify", "--tenant", "acme")
    assert code == 1, out
    assert "DELETED" in out, out
    assert "expired" not in out, out
