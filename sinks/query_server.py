"""SQL over loopback, served by the process that owns the embedded store (the sink).

* ``POST /sql``: one read-only statement, for holders of the **query token**
  (``sink.json``). Each request runs on an analyst session of its own (``store.open_analyst``:
  ``readonly = 1`` and limits for the session), never on the writers' client, so a heavy or
  hostile query can neither write nor hold up ingestion.
* ``GET /admin/retention`` / ``POST /admin/retention`` (``{"table", "days"}``): the store's
  TTL, for holders of the **admin token** (``sink-admin.json``, a file of its own, so analysts
  can be given ``sink.json`` without it). ``auditstream retention set`` uses it: with the
  embedded store only the owner can run DDL, and the CLI records the change as an audit
  event before it asks.

Both files are 0600 and removed on stop.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import queue
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from auditstream.config import ClickHouseSettings
from auditstream.sinks import store, tables
from auditstream.sinks.query import QueryError, admin_file, execute, owner_file
from auditstream.sinks.store import AnalystLimits

log = logging.getLogger(__name__)

MAX_SQL_BYTES = 1 << 20
MAX_SESSIONS = 4
"""Analyst sessions open at once; more queries wait for one (bounded, never the writer's)."""


class SessionPool:
    """Up to ``size`` analyst sessions, opened on demand; a session is used by one query."""

    def __init__(self, opener: Callable[[], Any], size: int = MAX_SESSIONS) -> None:
        self._opener = opener
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._all: list[Any] = []

    @contextlib.contextmanager
    def session(self, timeout: float = 120.0) -> Any:
        if not self._slots.acquire(timeout=timeout):
            raise QueryError("all analyst sessions are busy; try again shortly")
        try:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                client = self._opener()
                with self._lock:
                    self._all.append(client)
            try:
                yield client
            finally:
                self._idle.put(client)
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                with contextlib.suppress(Exception):
                    client.close()
            self._all.clear()


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


class QueryServer:
    """Serves analysts' SQL and the retention admin endpoint on 127.0.0.1."""

    def __init__(
        self,
        client: Any,
        database: str,
        owner_file: Path,
        port: int = 0,
        *,
        settings: ClickHouseSettings | None = None,
        limits: AnalystLimits | None = None,
    ) -> None:
        """``client`` is the sink's writer client: used only to find the store (its path);
        analysts never run on it. ``settings`` (preferred; see ``serve``) names the store."""
        self._settings = settings or _settings_of(client, database)
        self._database = database
        self._owner_file = owner_file
        self._admin_file = owner_file.with_name("sink-admin.json")
        self._token = secrets.token_urlsafe(32)
        self._admin_token = secrets.token_urlsafe(32)
        limits = limits or AnalystLimits()
        self._pool = SessionPool(lambda: store.open_analyst(self._settings, limits))
        self._admin_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def sessions(self) -> Callable[[], contextlib.AbstractContextManager[Any]]:
        """Analyst sessions for the audit-log API in this process (``api/server.py``)."""
        return self._pool.session

    def start(self) -> None:
        self._thread.start()
        pid = os.getpid()
        _write_private(
            self._admin_file, {"pid": pid, "port": self.port, "token": self._admin_token}
        )
        _write_private(self._owner_file, {"pid": pid, "port": self.port, "token": self._token})

    def stop(self) -> None:
        for path in (self._owner_file, self._admin_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._server.shutdown()
        self._server.server_close()
        self._pool.close()

    # -- work ------------------------------------------------------------------------------
    def run_sql(self, sql: str) -> bytes:
        with self._pool.session() as client:
            return execute(client, sql, self._database).to_json()

    def retention(self) -> dict[str, Any]:
        client = store.open_admin(self._settings)
        try:
            return {
                spec.name: tables.current_retention_days(client, self._database, spec)
                for spec in (tables.EVENTS, tables.ALERTS)
            }
        finally:
            client.close()

    def set_retention(self, table: str, days: int) -> dict[str, Any]:
        spec = tables.spec_named(table)
        with self._admin_lock:
            client = store.open_admin(self._settings)
            try:
                old = tables.current_retention_days(client, self._database, spec)
                tables.set_retention(client, self._database, spec, days)
                log.warning(
                    "retention of %s changed: %s -> %d days (admin request)", table, old, days
                )
                return {"table": table, "old": old, "new": days}
            finally:
                client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str) -> None:
                self._reply(status, json.dumps({"error": message}).encode())

            def _authorized(self, token: str) -> bool:
                supplied = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if hmac.compare_digest(supplied.encode(), token.encode()):
                    return True
                self._error(401, "missing or wrong token")
                return False

            def _body(self) -> bytes | None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0:  # rfile.read(-1) would read until the client hangs up
                    self._error(400, "a Content-Length of 0 or more is required")
                    return None
                if length > MAX_SQL_BYTES:
                    self._error(413, "query text too large")
                    return None
                return self.rfile.read(length)

            def do_GET(self) -> None:
                if self.path != "/admin/retention":
                    self._error(404, "POST /sql, GET or POST /admin/retention")
                    return
                if self._authorized(outer._admin_token):
                    self._answer(outer.retention)

            def do_POST(self) -> None:
                if self.path == "/sql":
                    if not self._authorized(outer._token):
                        return
                    body = self._body()
                    if body is not None:
                        sql = body.decode(errors="replace")
                        self._answer(lambda: outer.run_sql(sql))
                    return
                if self.path == "/admin/retention":
                    if not self._authorized(outer._admin_token):
                        return
                    body = self._body()
                    if body is None:
                        return
                    try:
                        doc = json.loads(body)
                        table, days = str(doc["table"]), int(doc["days"])
                    except (ValueError, KeyError, TypeError):
                        self._error(400, 'expected {"table": "audit_events", "days": N}')
                        return
                    self._answer(lambda: outer.set_retention(table, days))
                    return
                self._error(404, "POST /sql, GET or POST /admin/retention")

            def _answer(self, work: Callable[[], Any]) -> None:
                try:
                    result = work()
                except (QueryError, store.StoreUnavailable, ValueError) as exc:
                    self._error(400, str(exc))
                    return
                except Exception as exc:  # an engine error: the client gets its first line
                    log.exception("query server request failed")
                    self._error(500, str(exc).strip().split("\n")[0])
                    return
                body = result if isinstance(result, bytes) else json.dumps(result).encode()
                self._reply(200, body)

        return Handler


def _settings_of(client: Any, database: str) -> ClickHouseSettings:
    """The store a writer client is on (embedded: its path), so analysts get their own."""
    path = getattr(client, "path", None)
    if not path:
        raise ValueError("QueryServer serves the embedded store: pass settings=")
    return ClickHouseSettings(dsn=f"chdb://{path}", database=database)


def serve(settings: ClickHouseSettings, limits: AnalystLimits | None = None) -> QueryServer | None:
    """The query server for the embedded store (None with a ClickHouse server).

    ``sinks/service.py`` should build it with this (``server = query_server.serve(ch)``)
    rather than hand it the writers' client.
    """
    owner = owner_file(settings)
    if owner is None:
        return None
    assert admin_file(settings) == owner.with_name("sink-admin.json")
    return QueryServer(None, settings.database, owner, settings=settings, limits=limits)
