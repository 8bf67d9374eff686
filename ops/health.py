"""``/metrics``, ``/healthz`` and ``/readyz`` for one service, on its own small HTTP server.

* ``/metrics``: the Prometheus text format of the process's registry (``prometheus-client``).
* ``/healthz``: 200 while the process is alive and its main loop has not reported itself stuck
  (``Health.alive``), else 503: restart me.
* ``/readyz``: 200 once the service is doing its work (connected to Kafka and, for the sink,
  to the store: ``Health.ready``), else 503: don't count on me yet.

Each service records where it listens in ``AUDITSTREAM_HOME/services/<role>.json`` (pid,
address, start time), which ``auditstream status`` and ``auditstream run`` read. The server
binds loopback by default (``AUDITSTREAM_METRICS_HOST``); a port already taken is one
warning, and the service runs on without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from auditstream.config import Settings

log = logging.getLogger(__name__)


def _fine() -> str | None:
    return None


@dataclass
class Health:
    """What a service says about itself, asked at each request: each check returns why
    not (one short sentence) or None."""

    not_alive: Callable[[], str | None] = _fine
    """Why the service should be restarted (a loop that stopped turning), or None."""
    not_ready: Callable[[], str | None] = field(default=lambda: "starting")
    """Why the service is not doing its work yet (waiting for Kafka or the store), or None."""


def services_dir(settings: Settings) -> Path:
    return settings.home / "services"


def record_path(settings: Settings, role: str) -> Path:
    return services_dir(settings) / f"{role}.json"


def read_record(settings: Settings, role: str) -> dict[str, Any] | None:
    """The service's record, if the process that wrote it is still alive."""
    try:
        doc: dict[str, Any] = json.loads(record_path(settings, role).read_text())
        os.kill(int(doc["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc


class HealthServer:
    def __init__(
        self,
        role: str,
        health: Health,
        host: str,
        port: int,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.role, self.health, self.registry = role, health, registry
        handler = _handler(self)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.address = f"http://{_url_host(host)}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"{role}-health", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - a URL to reach it by, not a bind address
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                why = server.health.not_alive()
                self._json(503 if why else 200, {"alive": why is None, "detail": why or "ok"})
            elif path == "/readyz":
                why = server.health.not_ready()
                self._json(503 if why else 200, {"ready": why is None, "detail": why or "ok"})
            else:
                self._send(404, b"not found\n", "text/plain")

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps({"service": server.role, **doc}).encode() + b"\n"
            self._send(status, body, "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every 15 s is not worth a log line

    return Handler


def serve(
    settings: Settings, role: str, health: Health, say: Callable[[str], None] | None = None
) -> HealthServer | None:
    """Start the role's server on its configured port and write its service record."""
    port = settings.metrics.port(role)
    server: HealthServer | None = None
    if port is not None:
        try:
            server = HealthServer(role, health, settings.metrics.host, port).start()
        except OSError as exc:
            log.warning(
                "%s: cannot serve metrics and health on %s:%d (%s); running without them "
                "(set AUDITSTREAM_%s_METRICS_PORT)",
                role,
                settings.metrics.host,
                port,
                exc.strerror or exc,
                role.upper(),
            )
    record_path(settings, role).unlink(missing_ok=True)  # a previous process's
    services_dir(settings).mkdir(parents=True, exist_ok=True)
    add_to_record(settings, role, metrics=None if server is None else server.address)
    if server is not None and say is not None:
        say(f"{role}: metrics and health at {server.address}/metrics, /healthz, /readyz")
    return server


def forget(settings: Settings, role: str, server: HealthServer | None) -> None:
    """On stop: the server down, the record gone (if it is still ours)."""
    if server is not None:
        server.stop()
    path = record_path(settings, role)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def add_to_record(settings: Settings, role: str, **fields: Any) -> None:
    """Add fields to this process's service record, e.g. ``api="http://127.0.0.1:8080"``
    once the sink serves the HTTP API: ``auditstream run`` and ``status`` print them."""
    path = record_path(settings, role)
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        doc = {"role": role, "pid": os.getpid(), "started_at": time.time(), "metrics": None}
    doc.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
