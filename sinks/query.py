"""Analysts' SQL, wherever the store is.

A ClickHouse server is queried directly. The embedded chDB store can be opened by one
process only, and while the pipeline runs that is the sink: the sink then serves
read-only SQL on loopback (``query_server.py``), and this module finds it through the
``sink.json`` file the sink writes beside the data. With no sink running, the store is
opened directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from auditstream.config import ClickHouseSettings
from auditstream.sinks import store

READ_ONLY = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)


class QueryError(RuntimeError):
    """The query was refused or failed; the message is ClickHouse's or ours."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"columns": self.columns, "types": self.types, "rows": self.rows},
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
            default=str,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> QueryResult:
        doc = orjson.loads(raw)
        return cls(doc["columns"], doc["types"], doc["rows"])


def check_read_only(sql: str) -> None:
    """One statement, and one that reads: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS."""
    if not READ_ONLY.match(sql):
        raise QueryError(
            "only read-only statements are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)"
        )
    if _has_second_statement(sql):
        raise QueryError("one statement per query: remove the ';' between statements")


def _has_second_statement(sql: str) -> bool:
    """True if a ``;`` outside quotes and comments is followed by more SQL."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" else 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i < 0 else i
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            i = n if i < 0 else i + 1
        elif ch == ";" and sql[i + 1 :].strip(" \t\r\n;"):
            return True
        i += 1
    return False


def execute(client: Any, sql: str, database: str) -> QueryResult:
    """Run a read-only statement on an open client."""
    check_read_only(sql)
    try:
        result = client.query(sql.strip().rstrip(";"), settings={"max_execution_time": 60})
    except Exception as exc:
        raise QueryError(str(exc).split("\n")[0]) from exc
    types = [t.name for t in result.column_types]
    rows = [list(r) for r in result.result_rows]
    return QueryResult(list(result.column_names), types, rows)


def owner_file(settings: ClickHouseSettings) -> Path | None:
    path = settings.embedded_path
    return None if path is None else path.parent / "sink.json"


def _live_owner(settings: ClickHouseSettings) -> dict[str, Any] | None:
    path = owner_file(settings)
    if path is None or not path.exists():
        return None
    try:
        owner: dict[str, Any] = json.loads(path.read_text())
        os.kill(int(owner["pid"]), 0)
    except (ValueError, KeyError, ProcessLookupError, OSError):
        return None
    return owner


def run(settings: ClickHouseSettings, sql: str, timeout: float = 90.0) -> QueryResult:
    check_read_only(sql)
    owner = _live_owner(settings)
    if owner is None:
        client = store.connect(settings, create=settings.embedded)
        try:
            return execute(client, sql, settings.database)
        finally:
            client.close()
    request = urllib.request.Request(
        f"http://127.0.0.1:{owner['port']}/sql",
        data=sql.encode(),
        headers={"Authorization": f"Bearer {owner['token']}", "X-Database": settings.database},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return QueryResult.from_json(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError):
            detail = json.loads(detail)["error"]
        raise QueryError(detail) from None
    except urllib.error.URLError as exc:
        raise QueryError(
            f"the running sink (pid {owner['pid']}) did not answer: {exc.reason}. "
            "Check `auditstream status`, or stop the sink and query the store directly."
        ) from None
