"""Does a heavy analyst query hold up ingestion? Insert latency with and without one.

One embedded store, one writer client inserting a batch every ``interval`` seconds (the
sink's shape: ``client.insert`` of a few thousand rows), and three phases of the same
length in one run:

1. ``baseline``: inserts only;
2. ``analyst session``: a heavy query sent to the query server (``query_server.py``), which
   runs it on an analyst session of its own (readonly, limits);
3. ``shared client``: the same query on the writers' own client, as the query server did
   before (the arrangement that held new events for 50-87 s).

For each batch, latency = from the moment it was due to the moment its insert returned,
so a batch that had to wait for the client counts its wait. Figures are printed against
the baseline of the same run. A benchmark prints figures; no test asserts on them.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditstream.config import ClickHouseSettings
from auditstream.sinks import query, store
from auditstream.sinks.query_server import QueryServer
from auditstream.sinks.store import AnalystLimits

HEAVY = (
    "SELECT count() FROM audit_events AS e CROSS JOIN numbers(100000000) AS n "
    "WHERE sipHash64(e.event_id, n.number) % 1000003 = 7"
)
"""Minutes of CPU: it runs until the session's max_execution_time stops it."""

COLUMNS = ["event_id", "tenant_id", "occurred_at", "received_at", "actor_id", "action"]


@dataclass(frozen=True)
class Phase:
    name: str
    latencies: list[float]
    query_seconds: float | None
    query_outcome: str

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)


def _batch(rows: int, tick: int) -> list[list[Any]]:
    now = datetime.now(UTC)
    return [
        [
            uuid.uuid4(),
            f"t{i % 3}",
            now - timedelta(seconds=i),
            now,
            f"u{(tick + i) % 500}",
            "update",
        ]
        for i in range(rows)
    ]


def _ingest(writer: Any, seconds: float, interval: float, rows: int) -> list[float]:
    """Insert a batch every ``interval`` s for ``seconds``; each batch's due -> done time."""
    latencies: list[float] = []
    start = time.monotonic()
    tick = 0
    while True:
        due = start + tick * interval
        if due > start + seconds:
            return latencies
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        writer.insert("audit_events", _batch(rows, tick), column_names=COLUMNS)
        latencies.append(time.monotonic() - due)
        tick += 1


def _heavy(run: Any, sql: str, out: dict[str, Any]) -> None:
    started = time.monotonic()
    try:
        run(sql)
        out["outcome"] = "finished"
    except Exception as exc:  # the time limit ends it: that is expected
        out["outcome"] = str(exc).split("\n")[0][:90]
    out["seconds"] = time.monotonic() - started


def run(
    seconds: float = 20.0,
    interval: float = 0.5,
    rows: int = 2_000,
    seed_rows: int = 200_000,
    sql: str = HEAVY,
    threads: int | None = None,
    directory: Path | None = None,
) -> list[Phase]:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        settings = ClickHouseSettings(dsn=f"chdb://{Path(tmp) / 'clickhouse'}")
        limits = AnalystLimits(max_execution_time=max(1, int(seconds)))
        if threads is not None:
            limits = AnalystLimits(max_execution_time=limits.max_execution_time,
                                   max_threads=threads)  # fmt: skip
        writer = store.connect(settings)
        for done in range(0, seed_rows, 50_000):
            writer.insert("audit_events", _batch(min(50_000, seed_rows - done), done),
                          column_names=COLUMNS)  # fmt: skip
        server = QueryServer(writer, settings.database, Path(tmp) / "sink.json",
                             settings=settings, limits=limits)  # fmt: skip
        server.start()
        phases: list[Phase] = []
        try:
            phases.append(Phase("baseline", _ingest(writer, seconds, interval, rows), None, ""))
            for name, runner in (
                ("analyst session", lambda q: query.run(settings, q, timeout=seconds * 3)),
                (
                    "shared client",
                    lambda q: writer.query(
                        q,
                        settings={
                            "max_execution_time": limits.max_execution_time,
                            "max_threads": limits.max_threads,
                        },
                    ),
                ),
            ):
                info: dict[str, Any] = {}
                thread = threading.Thread(target=_heavy, args=(runner, sql, info))
                thread.start()
                time.sleep(min(1.0, seconds / 10))  # let the query get going
                lat = _ingest(writer, seconds, interval, rows)
                thread.join()
                phases.append(Phase(name, lat, info.get("seconds"), info.get("outcome", "")))
        finally:
            server.stop()
            writer.close()
        return phases


def report(phases: list[Phase]) -> list[str]:
    base = phases[0]
    lines = [
        f"{'phase':<16} {'batches':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'p50 x':>6} {'max x':>7}  heavy query"
    ]
    for p in phases:
        heavy = "" if p.query_seconds is None else f"{p.query_seconds:.1f}s, {p.query_outcome}"
        lines.append(
            f"{p.name:<16} {len(p.latencies):>7} {p.p50 * 1e3:>8.0f} "
            f"{p.quantile(0.99) * 1e3:>8.0f} "
            f"{max(p.latencies) * 1e3:>8.0f} {p.p50 / base.p50:>6.1f} "
            f"{max(p.latencies) / max(base.latencies):>7.1f}  {heavy}"
        )
    return lines


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=None, help="analyst max_threads")
    args = parser.parse_args()
    for line in report(run(args.seconds, args.interval, args.rows, threads=args.threads)):
        print(line)


if __name__ == "__main__":
    main()
