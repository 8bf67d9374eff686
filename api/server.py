"""Running the API: in the process that owns the embedded store, or standalone.

With the embedded store (chDB: one process per data directory) the API runs on a thread of
the sink, on the sink's own analyst sessions (``QueryServer.sessions``), and writes where it
listens to ``AUDITSTREAM_HOME/api.json``. With a ClickHouse server it runs on its own, as
many replicas as wanted, each with analyst sessions of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from auditstream.api.app import Context, SessionSource, create_app
from auditstream.api.jobs import Jobs
from auditstream.api.tokens import TokenStore
from auditstream.config import Settings

log = logging.getLogger(__name__)

API_FILE = "api.json"


class ApiUnavailable(RuntimeError):
    """The API could not listen (the port is taken...); the message says why."""


def api_file(settings: Settings) -> Path:
    return settings.home / API_FILE


def live_api(settings: Settings) -> dict[str, Any] | None:
    """``{"pid", "port", "url"}`` of the running API in this home, if any."""
    path = api_file(settings)
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        os.kill(int(doc["pid"]), 0)
    except (FileNotFoundError, ValueError, KeyError, ProcessLookupError, OSError):
        return None
    return doc


def context(settings: Settings, sessions: SessionSource) -> Context:
    return Context(
        api=settings.api,
        database=settings.clickhouse.database,
        sessions=sessions,
        tokens=TokenStore.in_home(settings.home),
        jobs=Jobs(settings.home / "exports"),
    )


class ApiServer:
    """uvicorn on a thread, on a socket bound before it starts (so a taken port is an error
    at once, and port 0 is known)."""

    def __init__(self, settings: Settings, sessions: SessionSource) -> None:
        self._settings = settings
        self._ctx = context(settings, sessions)
        host, port = settings.api.host, settings.api.port
        try:
            self._socket = socket.create_server((host, port), reuse_port=False)
            # Inherited by accepted connections: without it a response's headers and body
            # go out as two segments and the body waits ~40 ms for a delayed ACK (measured:
            # 45 ms -> 1 ms per request; bench/api.py).
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise ApiUnavailable(
                f"the API cannot listen on {host}:{port}: {exc.strerror}; set "
                "AUDITSTREAM_API_PORT to a free port"
            ) from None
        app = create_app(self._ctx)
        app.state.settings = settings  # what /v1/reviews needs beyond the context
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="api", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._settings.api.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ApiUnavailable("the API did not start; see the log above")
            time.sleep(0.02)
        path = api_file(self._settings)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "port": self.port, "url": self.url}, fh)
        tmp.replace(path)
        log.warning("audit-log API at %s (docs: %s/docs)", self.url, self.url)

    def serve_forever(self) -> None:
        """Standalone: until the process is told to stop."""
        self.start()
        with contextlib.suppress(KeyboardInterrupt):
            while self._thread.is_alive():
                self._thread.join(0.5)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            doc = json.loads(api_file(self._settings).read_text())
            if doc.get("pid") == os.getpid():
                api_file(self._settings).unlink()
        self._server.should_exit = True
        self._thread.join(10)
        self._ctx.jobs.close()
        with contextlib.suppress(OSError):
            self._socket.close()
