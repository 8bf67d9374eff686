"""Analysts' SQL: the read-only gate, and results over the wire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from auditstream.sinks.query import QueryError, QueryResult, check_read_only


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select count() from audit_events",
        "  \n\tSELECT 1",
        "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "( ( SELECT 1 ) )",
        "SHOW TABLES",
        "DESCRIBE TABLE audit_events",
        "DESC audit_events",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE audit_events",
        "SELECT 1;",
        "SELECT 1 ;  \n",
        "SELECT 1;;",
        "SELECT ';' AS s",
        "SELECT 'a; DROP TABLE x' AS s",
        'SELECT "col;umn" FROM t',
        "SELECT `col;umn` FROM t",
        "SELECT 'it''s; fine'",
        "SELECT 'it\\'s; fine'",
        "SELECT 1 -- trailing; DROP TABLE x",
        "SELECT 1 -- note; DROP TABLE x\nFROM t",
        "SELECT /* ; DROP TABLE x; */ 1",
        "SELECT 1 /* ; */ ; ",
    ],
)
def test_read_only_statements_allowed(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   ",
        "INSERT INTO audit_events VALUES (1)",
        "insert into t select 1",
        "DROP TABLE x",
        "ALTER TABLE audit_events DELETE WHERE 1",
        "TRUNCATE TABLE audit_events",
        "CREATE TABLE x (a Int8) ENGINE = Memory",
        "OPTIMIZE TABLE audit_events FINAL",
        "SYSTEM SHUTDOWN",
        "KILL QUERY WHERE 1",
        "SET readonly = 0",
        "SELECTED 1",
        "WITHOUT 1",
    ],
)
def test_writing_or_unknown_statements_refused(sql: str) -> None:
    with pytest.raises(QueryError, match="only read-only statements"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE x",
        "SELECT 1;DROP TABLE x",
        "select 1 ;\n drop table x",
        "SELECT 1; SELECT 2",
        "SELECT ';'; DROP TABLE x",
        "SELECT 'a\\'b'; DROP TABLE x",
        "SELECT 1 -- c\n; DROP TABLE x",
        "SELECT /* c */ 1; INSERT INTO t VALUES (1)",
        "WITH x AS (SELECT 1) SELECT * FROM x; ALTER TABLE t DELETE WHERE 1",
        "SELECT 1 # c\n; DROP TABLE x",
        "SELECT 1 #\n; SET readonly = 1",
        "SELECT 1 /* c */ ; -- c\n DROP TABLE x",
    ],
)
def test_second_statement_refused(sql: str) -> None:
    with pytest.raises(QueryError, match="one statement per query"):
        check_read_only(sql)


def test_words_skip_quotes() -> None:
    from auditstream.sinks.query import _words

    assert _words("SELECT 'INTO OUTFILE' AS `INTO OUTFILE`, \"x\" FROM t") == [
        "SELECT", "AS", "FROM", "T"
    ]  # fmt: skip
    assert _words("SELECT 1 INTO OUTFILE 'f'")[-2:] == ["INTO", "OUTFILE"]


def test_query_error_is_a_runtime_error() -> None:
    assert issubclass(QueryError, RuntimeError)


def test_result_json_round_trip() -> None:
    result = QueryResult(
        columns=["tenant_id", "n", "share", "tags", "note"],
        types=["String", "UInt64", "Float64", "Array(String)", "Nullable(String)"],
        rows=[["acme", 3, 0.5, ["a", "b"], None], ["ünï", 0, -1.25, [], 'x,"y"\n']],
    )
    assert QueryResult.from_json(result.to_json()) == result


def test_result_json_shape() -> None:
    raw = QueryResult(["a"], ["UInt8"], [[1]]).to_json()
    assert raw == b'{"columns":["a"],"types":["UInt8"],"rows":[[1]]}'


def test_result_json_turns_clickhouse_values_into_text() -> None:
    event_id = uuid.UUID("01963d4e-1b2c-7a00-8000-000000000001")
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    result = QueryResult(
        ["id", "at", "m", "d"],
        ["UUID", "DateTime64(3, 'UTC')", "Map(UInt8, String)", "Decimal(9, 2)"],
        [[event_id, when, {1: "one"}, complex(1, 2)]],
    )
    back = QueryResult.from_json(result.to_json())
    assert back.rows == [
        [str(event_id), "2026-01-02T03:04:05.678000+00:00", {"1": "one"}, "(1+2j)"]
    ]


def test_empty_result_round_trip() -> None:
    result = QueryResult([], [], [])
    assert QueryResult.from_json(result.to_json()) == result
