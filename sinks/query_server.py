"""Read-only SQL over loopback, served by the process that owns the embedded store."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from auditstream.sinks.query import QueryError, execute

MAX_SQL_BYTES = 1 << 20


class QueryServer:
    """Serves ``POST /sql`` on 127.0.0.1 to holders of a token kept in a 0600 file."""

    def __init__(self, client: Any, database: str, owner_file: Path, port: int = 0) -> None:
        self._client = client
        self._database = database
        self._owner_file = owner_file
        self._token = secrets.token_urlsafe(32)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        doc = {"pid": os.getpid(), "port": self.port, "token": self._token}
        tmp = self._owner_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
        tmp.replace(self._owner_file)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._owner_file.unlink()
        self._server.shutdown()
        self._server.server_close()

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

            def do_POST(self) -> None:
                supplied = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if self.path != "/sql":
                    self._reply(404, b'{"error": "POST /sql"}')
                    return
                if not hmac.compare_digest(supplied.encode(), outer._token.encode()):
                    self._reply(401, b'{"error": "missing or wrong token"}')
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_SQL_BYTES:
                    self._reply(413, b'{"error": "query text too large"}')
                    return
                sql = self.rfile.read(length).decode(errors="replace")
                try:
                    result = execute(outer._client, sql, outer._database)
                except QueryError as exc:
                    self._reply(400, json.dumps({"error": str(exc)}).encode())
                    return
                self._reply(200, result.to_json())

        return Handler
