"""Latency of the audit-log API on a big store: p50 / p95 of a filtered page and of the
analytics queries, over HTTP, with uvicorn on a thread and the sink's analyst sessions.

The store is filled directly (``INSERT ... SELECT FROM numbers``: ``rows`` events over
``days`` days for ``tenants`` tenants and 2,000 actors per tenant), then each request is
sent ``repeat`` times. A benchmark prints figures; no test asserts on them.

    .venv/bin/python -m auditstream.bench.api --rows 10000000 --repeat 50
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditstream.api.server import ApiServer
from auditstream.api.tokens import Role, Scope, TokenStore
from auditstream.config import ClickHouseSettings, Settings
from auditstream.sinks import store
from auditstream.sinks.query_server import SessionPool

ACTIONS = "['update','create','access','comment','status_change','assign','delete','sign_in']"
TYPES = "['task','project','time_entry','client','invoice','document','tag']"


def fill(client: object, database: str, rows: int, days: int, tenants: int) -> float:
    """Insert ``rows`` synthetic events in 1M-row steps; returns seconds taken."""
    began = time.perf_counter()
    span_ms = days * 86_400_000
    step = 1_000_000
    for first in range(0, rows, step):
        n = min(step, rows - first)
        client.command(  # type: ignore[attr-defined]
            f"INSERT INTO `{database}`.audit_events (event_id, tenant_id, occurred_at, "
            "received_at, actor_id, actor_type, actor_display_name, action, resource_type, "
            "resource_id, resource_name, outcome, ip, session_id) "
            "SELECT generateUUIDv4(), concat('tenant_', toString(k % {tenants})), t, t, "
            "concat('usr_', toString(cityHash64(k) % 2000)), 'member', "
            "concat('User ', toString(cityHash64(k) % 2000)), "
            f"{ACTIONS}[1 + k % 8], {TYPES}[1 + intDiv(k, 8) % 7], "
            "concat('res_', toString(cityHash64(k, 1) % 50000)), "
            "concat('Resource ', toString(cityHash64(k, 1) % 50000)), "
            "if(k % 97 = 0, 'failure', 'success'), '203.0.113.9', "
            "concat('sess_', toString(intDiv(k, 40))) "
            f"FROM (SELECT number + {first} AS k, now64(3) - toIntervalMillisecond("
            f"intDiv(cityHash64(number + {first}) % {span_ms}, 1)) AS t "
            f"FROM numbers({n}))".replace("{tenants}", str(tenants))
        )
    return time.perf_counter() - began


class _Client:
    """A keep-alive HTTP client from the standard library (the bench ships with the package;
    httpx is a test dependency only)."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        self._conn.request("GET", path + query, headers=self._headers)
        answer = self._conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{path}: {answer.status} {body[:200]!r}")
        return json.loads(body)

    def close(self) -> None:
        self._conn.close()


def _measure(client: _Client, path: str, params: dict[str, str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        client.get(path, params)
        times.append((time.perf_counter() - began) * 1000)
    return times


def _ingest(writer: object, seconds: float, load: Callable[[], None] | None) -> list[float]:
    """Insert a 2,000-row batch every 0.2 s (the sink's shape) for ``seconds``, with ``load``
    running on another thread meanwhile; returns each insert's latency in ms."""
    stop = threading.Event()
    loader = None
    if load is not None:

        def keep_loading() -> None:
            while not stop.is_set():
                load()

        loader = threading.Thread(target=keep_loading, daemon=True)
        loader.start()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        batch = [
            [uuid.uuid4(), "tenant_ingest", now, now, f"usr_{i % 50}", "update"]
            for i in range(2000)
        ]
        began = time.perf_counter()
        writer.insert("audit_events", batch, column_names=INGEST_COLUMNS)  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - began) * 1000)
        time.sleep(max(0.0, 0.2 - (time.perf_counter() - began)))
    stop.set()
    if loader is not None:
        loader.join(60)
    return latencies


INGEST_COLUMNS = ["event_id", "tenant_id", "occurred_at", "received_at", "actor_id", "action"]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--ingest-seconds", type=float, default=20.0,
        help="Insert latency alone, then under API load, this long each.",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ch = ClickHouseSettings(dsn=f"chdb://{home / 'clickhouse'}")
        writer = store.connect(ch)
        seconds = fill(writer, ch.database, args.rows, args.days, args.tenants)
        print(f"filled {args.rows:,} events over {args.days} days, {args.tenants} tenants "
              f"in {seconds:.1f} s")  # fmt: skip
        base = Settings.from_env({"AUDITSTREAM_HOME": str(home)})
        settings = replace(base, api=replace(base.api, enabled=True, port=0))
        pool = SessionPool(lambda: store.open_analyst(ch))
        server = ApiServer(settings, pool.session)
        server.start()
        token, _ = TokenStore.in_home(home).create("tenant_3", (Scope.READ,), Role.MEMBER)
        now = datetime.now(UTC)
        week = {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
        month = {"from": (now - timedelta(days=30)).isoformat(), "to": now.isoformat()}
        cases = [
            ("page: tenant, actor, 7 days", "/v1/events", {**week, "actor_id": "usr_42"}),
            ("page: tenant, 7 days", "/v1/events", week),
            ("page: tenant, 30 days, action group", "/v1/events", {**month, "action": "update"}),
            ("page: search, 7 days", "/v1/events", {**week, "q": "resource 123"}),
            ("counts by action, 30 days", "/v1/analytics/counts", month),
            ("top actors, 30 days", "/v1/analytics/top-actors", month),
            ("summary, 30 days", "/v1/analytics/summary", month),
            ("trend per day, 30 days", "/v1/analytics/trend", month),
        ]
        client = _Client(server.url, token)
        try:
            some = client.get("/v1/events", {**week, "actor_id": "usr_42"})
            if some["data"]:
                event = some["data"][-1]
                entity = event["entity"]
                cases += [
                    ("event detail (by id, no range)", f"/v1/events/{event['event_id']}", {}),
                    ("entity timeline (400 days)",
                     f"/v1/entities/{entity['type']}/{entity['id']}/timeline", {}),
                ]  # fmt: skip
            print(f"{'request':40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for name, path, params in cases:
                _measure(client, path, params, 2)  # warm-up
                times = sorted(_measure(client, path, params, args.repeat))
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                print(f"{name:40} {statistics.median(times):8.1f} {p95:8.1f} "
                      f"{times[-1]:8.1f}")  # fmt: skip
            if args.ingest_seconds > 0:

                def api_load() -> None:
                    for _, path, params in cases:
                        client.get(path, params)

                alone = _ingest(writer, args.ingest_seconds, None)
                loaded = _ingest(writer, args.ingest_seconds, api_load)
                print(f"{'insert of 2,000 rows':40} {'p50 ms':>8} {'p99 ms':>8}")
                for label, lat in (("alone", alone), ("while the API is queried", loaded)):
                    print(f"{label:40} {statistics.median(lat):8.1f} "
                          f"{_quantile(lat, 0.99):8.1f}")  # fmt: skip
        finally:
            client.close()
            server.stop()
            pool.close()
            writer.close()


if __name__ == "__main__":
    main()
