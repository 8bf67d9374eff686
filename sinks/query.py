"""Analysts' SQL, wherever the store is.

A ClickHouse server is queried directly. The embedded chDB store can be opened by one
process only, and while the pipeline runs that is the sink: the sink then serves
read-only SQL on loopback (``query_server.py``), and this module finds it through the
``sink.json`` file the sink writes beside the data. With no sink running, the store is
opened directly, read-only.

What makes a query read-only is ClickHouse itself: every analyst query runs on an analyst
session (``store.open_analyst``: its own client, never the writers', ``readonly = 1`` and
result / memory / time limits for the session, which a query cannot change). ClickHouse's
``readonly`` leaves a few things open that an analyst must not have, so before a query runs
it goes through ClickHouse's own parser (``vet``):

* ``formatQuerySingleLine`` parses it as exactly one statement (ClickHouse refuses
  multi-statements there, whatever the comments), and that canonical text is what runs;
* its first keyword must be a reading one (``KILL``, ``SYSTEM``, ``USE``, ``SET`` are not
  refused by ``readonly``), and it may not say ``INTO OUTFILE`` (chDB writes the file);
* ``EXPLAIN AST`` lists its functions: table functions other than a few that only generate
  or read our own tables, and the ``file()`` function (it reads any file in chDB, readonly
  or not), are refused.

``check_read_only`` is the quick text check run first, for friendly messages only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from auditstream.config import ClickHouseSettings
from auditstream.sinks import store
from auditstream.sinks.store import AnalystLimits

READ_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
READ_ONLY = re.compile(rf"^\s*(\(\s*)*({'|'.join(READ_KEYWORDS)})\b", re.I)

ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generate_series",
        "generateseries",
        "primes",
        "values",
        "view",
        "merge",
        "null",
        "format",
        "generaterandom",
    }
)
"""Table functions that only generate rows or read tables of this store."""

DENIED_FUNCTIONS = frozenset({"file", "catboostevaluate", "hascolumnintable"})
"""Functions that read files (``file`` ignores ``user_files_path`` in chDB), load models
from paths, or connect to other hosts."""

_AST_FUNCTION = re.compile(r"^\s*Function (\S+)", re.M)


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


def literal(text: str) -> str:
    """A ClickHouse string literal, for the few statements built around a name (a topic, a
    database); values from requests go in as query parameters."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_read_only(sql: str) -> None:
    """One statement, and one that reads: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS.

    A text check for friendly messages; ``vet`` and the session's ``readonly`` enforce.
    """
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
        elif sql.startswith("--", i) or ch == "#":
            i = sql.find("\n", i)
            i = n if i < 0 else i
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            i = n if i < 0 else i + 1
        elif ch == ";" and _more_sql(sql[i + 1 :]):
            return True
        i += 1
    return False


def _more_sql(rest: str) -> bool:
    """Anything but blanks, ``;`` and comments."""
    stripped = re.sub(r"--[^\n]*|#[^\n]*|/\*.*?\*/", "", rest, flags=re.S)
    return bool(stripped.strip(" \t\r\n;"))


def _words(canonical: str) -> list[str]:
    """Upper-cased bare words of a canonical (comment-free) statement, quotes skipped."""
    out: list[str] = []
    i, n = 0, len(canonical)
    while i < n:
        ch = canonical[i]
        if ch in "'\"`":
            i += 1
            while i < n and canonical[i] != ch:
                i += 2 if canonical[i] == "\\" else 1
            i += 1
            continue
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(canonical, i)
        if m:
            out.append(m.group().upper())
            i = m.end()
        else:
            i += 1
    return out


def _first_line(text: str) -> str:
    line = text.strip().split("\n")[0]
    return re.sub(r"\s*(: )?In scope SELECT formatQuerySingleLine.*$", "", line)


def vet(client: Any, sql: str) -> str:
    """The statement as ClickHouse parses it (one statement, canonical text), if allowed."""
    try:
        canonical = str(
            client.query(
                "SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}
            ).result_rows[0][0]
        )
    except Exception as exc:
        text = str(exc)
        if "Multi-statements are not allowed" in text:
            raise QueryError("one statement per query: remove the ';' between statements") from None
        raise QueryError(_first_line(text)) from None
    words = _words(canonical)
    if not words or words[0] not in READ_KEYWORDS:
        raise QueryError(
            "only read-only statements are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)"
        )
    if any(a == "INTO" and b == "OUTFILE" for a, b in itertools.pairwise(words)):
        raise QueryError("INTO OUTFILE is not allowed: use --format csv or json and redirect")
    try:
        ast = "\n".join(str(r[0]) for r in client.query(f"EXPLAIN AST {canonical}").result_rows)
    except Exception as exc:
        raise QueryError(_first_line(str(exc))) from None
    refused = sorted(
        {name for name in _AST_FUNCTION.findall(ast) if _refused_function(client, name)}
    )
    if refused:
        raise QueryError(
            f"{', '.join(refused)}: not allowed in analysts' queries (they read files or "
            "other hosts); query the tables of the store"
        )
    return canonical


def _refused_function(client: Any, name: str) -> bool:
    lowered = name.lower()
    if lowered in DENIED_FUNCTIONS:
        return True
    return lowered in _table_functions(client) and lowered not in ALLOWED_TABLE_FUNCTIONS


def _table_functions(client: Any) -> frozenset[str]:
    cached: frozenset[str] | None = getattr(client, "_auditstream_table_functions", None)
    if cached is None:
        rows = client.query("SELECT name FROM system.table_functions").result_rows
        cached = frozenset(str(r[0]).lower() for r in rows)
        # Some table functions exist under names the catalogue doesn't list (chDB's Python).
        cached |= {"python"}
        with contextlib.suppress(AttributeError):
            client._auditstream_table_functions = cached
    return cached


def execute(client: Any, sql: str, database: str = "") -> QueryResult:
    """Run one read-only statement on an analyst session (``store.open_analyst``)."""
    check_read_only(sql)
    canonical = vet(client, sql)
    try:
        result = client.query(canonical)
    except Exception as exc:
        raise QueryError(_friendly(str(exc))) from exc
    types = [t.name for t in result.column_types]
    rows = [list(r) for r in result.result_rows]
    return QueryResult(list(result.column_names), types, rows)


def _friendly(text: str) -> str:
    line = _first_line(text)
    if "TOO_MANY_ROWS_OR_BYTES" in line and "result" in line.lower():
        return f"{line} -- add a LIMIT or aggregate"
    if "TIMEOUT_EXCEEDED" in line:
        return f"{line} -- narrow the time range or tenant"
    return line


def owner_file(settings: ClickHouseSettings) -> Path | None:
    path = settings.embedded_path
    return None if path is None else path.parent / "sink.json"


def admin_file(settings: ClickHouseSettings) -> Path | None:
    """The sink's admin token (retention changes); a file of its own, so that analysts can
    be given ``sink.json`` without being given this."""
    path = settings.embedded_path
    return None if path is None else path.parent / "sink-admin.json"


def live_owner(settings: ClickHouseSettings) -> dict[str, Any] | None:
    """The running sink that owns the embedded store (pid, port, token), if any."""
    path = owner_file(settings)
    if path is None or not path.exists():
        return None
    try:
        owner: dict[str, Any] = json.loads(path.read_text())
        os.kill(int(owner["pid"]), 0)
    except (ValueError, KeyError, ProcessLookupError, OSError):
        return None
    return owner


_live_owner = live_owner

OWNER_START_SECONDS = 15.0
"""How long a reader that could not open the embedded store waits for a starting sink to
announce itself before it gives up with the store's error."""


def _owner_within(
    settings: ClickHouseSettings, seconds: float, clock: Callable[[], float] = time.monotonic
) -> dict[str, Any] | None:
    deadline = clock() + seconds
    while True:
        owner = live_owner(settings)
        if owner is not None or clock() >= deadline:
            return owner
        time.sleep(0.1)


def run(
    settings: ClickHouseSettings,
    sql: str,
    timeout: float = 90.0,
    limits: AnalystLimits | None = None,
) -> QueryResult:
    check_read_only(sql)
    owner = live_owner(settings)
    if owner is None:
        try:
            client = store.open_analyst(settings, limits, owner=False)
        except store.StoreBusy:
            # A sink that is starting holds the store before it says so in ``sink.json``.
            owner = _owner_within(settings, OWNER_START_SECONDS)
            if owner is None:
                raise
        else:
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
