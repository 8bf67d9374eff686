"""The read side: analysts can't write or reach outside the store, readers change nothing,
retention changes only on purpose (and is audited), files are private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.config import ClickHouseSettings
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.producers.sample import events as sample_events
from auditstream.sinks import query, store, tables
from auditstream.sinks.query import QueryError
from auditstream.sinks.query_server import QueryServer

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

OLD_ROWS = 40
"""Rows 100 days old: kept by a 365-day TTL, dropped by a 30-day one."""


def _seed(client: Any, database: str = "auditstream", rows: int = OLD_ROWS) -> None:
    client.command(
        f"INSERT INTO `{database}`.audit_events (event_id, tenant_id, occurred_at, received_at) "
        f"SELECT generateUUIDv4(), if(number % 2 = 0, 'acme', 'globex'), "
        f"now64(3) - INTERVAL 100 DAY, now64(3) FROM numbers({rows})"
    )


def _ttl(client: Any) -> str:
    return str(
        client.command(
            "SELECT engine_full FROM system.tables "
            "WHERE database = 'auditstream' AND name = 'audit_events'"
        )
    )


def _cli(
    home: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDITSTREAM_HOME": str(home), **(extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=home.parent,
    )


# -- item 8: a reader never changes the store ------------------------------------------------
def test_reader_does_not_rewrite_the_ttl(tmp_path: Path) -> None:
    """`AUDITSTREAM_RETENTION_DAYS=30 auditstream sql` with no sink used to ALTER the TTL."""
    home = tmp_path / "home"
    settings = ClickHouseSettings(dsn=f"chdb://{home / 'clickhouse'}")
    writer = store.connect(settings)
    _seed(writer)
    before = _ttl(writer)
    writer.close()
    assert "toIntervalDay(365)" in before

    done = _cli(home, "sql", "SELECT count() FROM audit_events", "--format", "csv",
                extra={"AUDITSTREAM_RETENTION_DAYS": "30"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == str(OLD_ROWS)

    writer = store.connect(replace(settings, retention_days=365))
    try:
        assert _ttl(writer) == before
        writer.command("OPTIMIZE TABLE auditstream.audit_events FINAL")
        assert int(writer.command("SELECT count() FROM auditstream.audit_events")) == OLD_ROWS
    finally:
        writer.close()


def test_reader_of_a_store_without_tables_is_told_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _cli(home, "sql", "SELECT 1")
    assert done.returncode == 1
    assert "start the sink" in done.stderr
    assert not (home / "clickhouse").exists()  # nothing created by a reader


def test_sink_start_keeps_an_existing_ttl(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'ch'}")
    writer = store.connect(settings)
    _seed(writer)
    writer.close()
    writer = store.connect(replace(settings, retention_days=30))  # the sink's start-up
    try:
        assert "toIntervalDay(365)" in _ttl(writer)
        assert any("retention set 30" in r.getMessage() for r in caplog.records)
        writer.command("OPTIMIZE TABLE auditstream.audit_events FINAL")
        assert int(writer.command("SELECT count() FROM auditstream.audit_events")) == OLD_ROWS
    finally:
        writer.close()


# -- item 7: a hostile corpus ----------------------------------------------------------------
def _corpus(tmp: Path) -> list[str]:
    out = tmp / "outfile.txt"
    return [
        "WITH 1 AS x INSERT INTO audit_events (tenant_id) VALUES ('forged')",
        "INSERT INTO audit_events (tenant_id) VALUES ('forged')",
        "SELECT 1 # it's\n; DROP TABLE audit_events",
        "SELECT 1 # it's\n; ALTER TABLE audit_events MODIFY TTL toDateTime(occurred_at) + "
        "INTERVAL 1 DAY",
        "SELECT 1 # it's\n; CREATE TABLE x (a UInt8) ENGINE = Memory",
        "SELECT 1 # it's\n; SET readonly = 1",
        "SELECT 1 # hidden\n; DROP TABLE audit_events",
        "SELECT 1 #\n; ALTER TABLE audit_events MODIFY TTL toDateTime(occurred_at) + "
        "INTERVAL 1 DAY",
        "SELECT 1 #\n; CREATE TABLE x (a UInt8) ENGINE = Memory",
        "SELECT 1 #\n; SET readonly = 0",
        "SELECT 1 -- c\n; DROP TABLE audit_events",
        "SELECT 1 /* ; */; DROP TABLE audit_events",
        "SELECT 1; INSERT INTO audit_events (tenant_id) VALUES ('forged')",
        "SET readonly = 1",
        "SET max_execution_time = 100000",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS max_execution_time = 100000",
        "SELECT 1 SETTINGS max_result_rows = 0",
        f"SELECT 1 INTO OUTFILE '{out}'",
        f"SELECT * FROM audit_events INTO OUTFILE '{out}' FORMAT CSV",
        "SELECT * FROM file('/etc/shadow', 'LineAsString')",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT file('/etc/passwd')",
        "SELECT `file`('/etc/passwd')",
        "DESCRIBE file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/x', 'LineAsString')",
        "SELECT * FROM s3('http://127.0.0.1:1/bucket/key', 'CSV', 'x String')",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
        "SELECT * FROM input('x String')",
        "SELECT * FROM executable('x.sh', 'TSV', 'x String')",
        "SELECT * FROM mysql('127.0.0.1:3306', 'd', 't', 'u', 'p')",
        "SELECT * FROM Python(QueryServer)",
        "DESCRIBE TABLE Python(QueryServer)",
        "SELECT * FROM dictionary('d')",
        "SELECT hasColumnInTable('127.0.0.1', 'auditstream', 'audit_events', 'x')",
        "EXPLAIN SELECT * FROM url('http://127.0.0.1:1/x', 'LineAsString')",
        "WITH (SELECT count() FROM file('/etc/passwd', 'LineAsString')) AS n SELECT n",
        "SYSTEM STOP MERGES",
        "SYSTEM SHUTDOWN",
        "KILL QUERY WHERE 1",
        "OPTIMIZE TABLE audit_events FINAL",
        "ALTER TABLE audit_events DELETE WHERE 1",
        "DELETE FROM audit_events WHERE 1",
        "TRUNCATE TABLE audit_events",
        "DROP TABLE audit_events",
        "CREATE TEMPORARY TABLE t (a UInt8)",
        "EXCHANGE TABLES audit_events AND security_alerts",
        "RENAME TABLE audit_events TO x",
        "CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(FILE(path '/etc/passwd' "
        "format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
        "CREATE FUNCTION f AS x -> x",
        "USE system",
        "GRANT ALL ON *.* TO default",
        "SELECT * FROM numbers(2000000)",  # over max_result_rows
        "SELECT count() FROM numbers(100000000000) WHERE sleepEachRow(1) = 0 "
        "SETTINGS max_execution_time = 1",
    ]


ALLOWED = [
    ("SELECT count() FROM audit_events WHERE tenant_id != 'forged'", None),
    ("SELECT * FROM numbers(3)", [[0], [1], [2]]),
    ("SHOW TABLES", None),
    ("DESC audit_events", None),
    ("EXISTS TABLE audit_events", [[1]]),
    ("(SELECT 1) UNION ALL (SELECT 2)", [[1], [2]]),
    ("SELECT 'a; DROP TABLE x # b' AS s -- c", [["a; DROP TABLE x # b"]]),
]


def _assert_corpus_refused(run: Any, tmp: Path) -> None:
    for sql in _corpus(tmp):
        try:
            run(sql)
        except QueryError:
            continue
        pytest.fail(f"not refused: {sql!r}")
    for sql, rows in ALLOWED:
        result = run(sql)
        if rows is not None:
            assert result.rows == rows, sql
    assert not (tmp / "outfile.txt").exists()


def _assert_store_untouched(client: Any, before_ttl: str) -> None:
    assert _ttl(client) == before_ttl
    assert (
        int(
            client.command(
                "SELECT count() FROM auditstream.audit_events WHERE tenant_id = 'forged'"
            )
        )
        == 0
    )
    names = str(
        client.command("SELECT groupArray(name) FROM system.tables WHERE database = 'auditstream'")
    )
    assert "audit_events" in names
    assert "security_alerts" in names


def test_hostile_corpus_in_the_owner_process_and_the_writer_keeps_writing(tmp_path: Path) -> None:
    """The sink's arrangement in one process: a writer client and the query server's own
    analyst sessions on the same engine; after the corpus the writer still writes."""
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'ch'}")
    writer = store.connect(settings)
    server = QueryServer(writer, settings.database, tmp_path / "sink.json", settings=settings)
    server.start()
    try:
        _seed(writer)
        before = _ttl(writer)
        _assert_corpus_refused(lambda sql: query.run(settings, sql), tmp_path)
        _assert_store_untouched(writer, before)
        _seed(writer, rows=5)  # the writers' client is unaffected (not read-only)
        assert int(writer.command("SELECT count() FROM auditstream.audit_events")) == OLD_ROWS + 5
        assert writer.command("SELECT getSetting('readonly')") in (0, "0")
    finally:
        server.stop()
        writer.close()


def test_hostile_corpus_on_a_directly_opened_store(tmp_path: Path) -> None:
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'ch'}")
    writer = store.connect(settings)
    _seed(writer)
    before = _ttl(writer)
    writer.close()
    reader = store.open_analyst(settings, owner=False)
    try:
        _assert_corpus_refused(lambda sql: query.execute(reader, sql), tmp_path)
    finally:
        reader.close()
    writer = store.connect(settings)
    try:
        _assert_store_untouched(writer, before)
        _seed(writer, rows=1)  # and it can be written again once the reader is gone
        assert int(writer.command("SELECT count() FROM auditstream.audit_events")) == OLD_ROWS + 1
    finally:
        writer.close()


def _producer(env: Env) -> AuditProducer:
    return AuditProducer(
        ProducerConfig(
            bootstrap_servers=env.bootstrap,
            topic=env.settings.topics.raw,
            spool_dir=env.settings.home / "spool",
        )
    )


def _emit(env: Env, count: int, seed: int) -> None:
    with _producer(env) as audit:
        for fields in sample_events(count, seed=seed):
            audit.emit(**fields)
        assert audit.flush(30) == 0


def test_hostile_corpus_through_a_running_sink_while_it_ingests(env: Env, tmp_path: Path) -> None:
    pipeline = env.pipeline()
    stop = threading.Event()
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        _emit(env, 200, seed=1)
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= 200, what="first events")

        def keep_producing() -> None:
            seed = 100
            while not stop.is_set():
                _emit(env, 20, seed=seed)
                seed += 1

        producing = threading.Thread(target=keep_producing)
        producing.start()
        _assert_corpus_refused(lambda sql: query.run(env.settings.clickhouse, sql), tmp_path)
        stop.set()
        producing.join(60)
        stored = env.scalar("SELECT count() FROM audit_events")
        _emit(env, 50, seed=999)  # ingestion still works after the corpus
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= stored + 50,
                 what="events after the corpus")  # fmt: skip
        assert env.scalar("SELECT count() FROM audit_events WHERE tenant_id = 'forged'") == 0
        assert "toIntervalDay(365)" in env.scalar(
            "SELECT engine_full FROM system.tables WHERE name = 'audit_events'"
        )
        # item 12: nothing under the home is readable by group or others
        readable = _shared_entries(env.settings.home)
        assert readable == [], readable
    finally:
        stop.set()
        pipeline.stop_all()


def _shared_entries(root: Path) -> list[str]:
    out = []
    for path in [root, *root.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            out.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(root)}")
    return out


# -- item 8: retention set -------------------------------------------------------------------
def _raw_records(env: Env) -> list[dict[str, Any]]:
    messages = env.read_topic(env.settings.topics.raw, 1, timeout=15)
    return [orjson.loads(m.value()) for m in messages]


def test_retention_set_without_a_sink_records_then_changes(env: Env) -> None:
    ch = env.settings.clickhouse
    writer = store.connect(ch)
    _seed(writer)
    writer.close()
    done = _cli(env.settings.home, "retention", "set", "30", "--yes", extra=env.vars)
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"This deletes {OLD_ROWS} rows older than 30 days" in done.stdout
    assert "acme" in done.stdout
    assert "globex" in done.stdout
    records = _raw_records(env)
    assert len(records) == 1, records
    [record] = records
    assert record["tenant_id"] == "_system"
    assert record["actor"]["type"] == "system"
    assert record["action"] == "update"
    assert record["resource"] == {"type": "retention_policy", "id": "audit_events",
                                  "name": "audit_events TTL"}  # fmt: skip
    assert record["changes"] == [{"field": "retention_days", "old": 365, "new": 30}]
    writer = store.connect(ch)
    try:
        assert tables.current_retention_days(writer, "auditstream", tables.EVENTS) == 30
    finally:
        writer.close()


def test_retention_set_through_the_running_sink(env: Env) -> None:
    pipeline = env.pipeline()
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        done = _cli(env.settings.home, "retention", "set", "400", "--yes", extra=env.vars)
        assert done.returncode == 0, done.stderr + done.stdout
        assert "toIntervalDay(400)" in env.scalar(
            "SELECT engine_full FROM system.tables WHERE name = 'audit_events'"
        )
        shown = _cli(env.settings.home, "retention", "show", extra=env.vars)
        assert "audit_events: 400 days (configured: 365)" in shown.stdout, shown.stderr
        [record] = _raw_records(env)
        assert record["changes"] == [{"field": "retention_days", "old": 365, "new": 400}]
    finally:
        pipeline.stop_all()


def test_retention_set_refused_when_kafka_is_unreachable(env: Env) -> None:
    ch = env.settings.clickhouse
    writer = store.connect(ch)
    writer.close()
    unreachable = {**env.vars, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = _cli(env.settings.home, "retention", "set", "30", "--yes", "--kafka-timeout", "3",
                extra=unreachable)  # fmt: skip
    assert done.returncode == 1
    assert "retention NOT changed" in done.stderr
    # and the refused record is not left in any spool, to be replayed later
    assert not (env.settings.home / "spool").exists()
    assert not (env.settings.home.parent / ".auditstream").exists()  # the CLI's cwd
    writer = store.connect(ch)
    try:
        assert tables.current_retention_days(writer, "auditstream", tables.EVENTS) == 365
    finally:
        writer.close()


def test_retention_set_past_the_end_of_datetime_is_refused_and_keeps_every_row(env: Env) -> None:
    # 30,000 days: the TTL would pass 2106 and wrap to 1972, deleting every row at the next
    # merge, while a preview that only counts for shorter retentions said "nothing is deleted".
    ch = env.settings.clickhouse
    writer = store.connect(ch)
    _seed(writer)
    before = writer.command("SELECT count() FROM auditstream.audit_events")
    writer.close()
    done = _cli(env.settings.home, "retention", "set", "30000", "--yes", extra=env.vars)
    assert done.returncode == 1, done.stdout
    assert "longer than the store can keep" in done.stderr + done.stdout
    assert _raw_records(env) == []  # nothing recorded: nothing changed
    writer = store.connect(ch)
    try:
        assert tables.current_retention_days(writer, "auditstream", tables.EVENTS) == 365
        writer.command("OPTIMIZE TABLE auditstream.audit_events FINAL")
        assert writer.command("SELECT count() FROM auditstream.audit_events") == before
    finally:
        writer.close()


def test_query_server_refuses_a_negative_content_length(tmp_path: Path) -> None:
    # rfile.read(-1) read until the client hung up: one request could hold a server thread.
    import json
    import socket

    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'ch'}")
    writer = store.connect(settings)
    server = QueryServer(writer, settings.database, tmp_path / "sink.json", settings=settings)
    server.start()
    try:
        owner = json.loads((tmp_path / "sink.json").read_text())
        with socket.create_connection(("127.0.0.1", owner["port"]), timeout=10) as conn:
            conn.sendall(
                b"POST /sql HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n"
                + f"Authorization: Bearer {owner['token']}\r\n\r\nSELECT 1".encode()
            )
            answer = conn.recv(4096).decode(errors="replace")  # no hang: an answer at once
        assert answer.startswith("HTTP/1.0 400") or answer.startswith("HTTP/1.1 400"), answer
        assert "Content-Length" in answer
    finally:
        server.stop()
        writer.close()
