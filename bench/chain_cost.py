"""What hash chaining costs the sink: the same messages turned into rows (``to_row``) and
written in batches through ``BatchWriter`` into chDB, with and without the chain
(``integrity/chain.py``), alternating, in one run. Kafka is left out (the same for both).

    .venv/bin/python -m auditstream.bench.chain_cost [--events 120000] [--batch 20000]
        [--rounds 6]

Prints rows/s and CPU time per row (this process's, chDB's threads included: steadier than
wall time on a shared machine) for each, their ratios (overall and per round), and the
chaining work alone (canonical bytes + sha256 per row, ``Chainer.link``). Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from auditstream.config import ClickHouseSettings
from auditstream.integrity.chain import Chainer, store_heads
from auditstream.sinks import store, tables
from auditstream.sinks.batch import Batch
from auditstream.sinks.rows import to_row
from auditstream.sinks.writer import BatchWriter


def messages(n: int, start: datetime) -> list[bytes]:
    """Normalized events as the sink reads them."""
    out = []
    for i in range(n):
        doc = {
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "tenant_id": f"t{i % 5}",
            "occurred_at": (start + timedelta(milliseconds=i)).isoformat(),
            "received_at": (start + timedelta(milliseconds=i + 3)).isoformat(),
            "actor": {"id": f"u{i % 97}", "display_name": "Ada Lovelace"},
            "action": "update",
            "resource": {"type": "invoice", "id": f"INV-{i}", "name": "Invoice"},
            "ip": "203.0.113.9",
            "changes": [{"field": "amount", "old": i, "new": i + 1}],
            "metadata": {"source": "bench", "n": i},
        }
        out.append(orjson.dumps(doc))
    return out


def rows_of(values: list[bytes]) -> list[tuple[Any, ...]]:
    return [to_row(v, i % 6, i, None) for i, v in enumerate(values)]


def events(n: int, start: datetime) -> list[tuple[Any, ...]]:
    return rows_of(messages(n, start))


def batches(rows: list[tuple[Any, ...]], size: int, salt: str) -> list[Batch]:
    out = []
    for lo in range(0, len(rows), size):
        batch = Batch(size, 1.0, salt=salt)
        for i, row in enumerate(rows[lo : lo + size], lo):
            batch.add(row, "bench", int(row[tables.EVENTS.index_of("kafka_partition")]), i)
        out.append(batch)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="auditstream-chain-bench-") as path:
        settings = ClickHouseSettings(dsn=f"chdb://{path}")
        client = store.connect(settings)
        writers: dict[str, BatchWriter] = {}
        for name in ("plain", "chained"):
            client.command(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            tables.ensure(client, name, 365)
            chain = Chainer(store_heads(client, name)) if name == "chained" else None
            writers[name] = BatchWriter(client, name, tables.EVENTS, chain=chain)
        wall: dict[str, list[float]] = {"plain": [], "chained": []}
        cpu: dict[str, list[float]] = {"plain": [], "chained": []}
        rounds = args.rounds
        per_round = max(args.batch, args.events // rounds)
        for r in range(rounds):
            values = messages(per_round, start + timedelta(hours=r))
            # Alternate which goes first, so neither always meets a warmer store.
            for name in ("plain", "chained") if r % 2 == 0 else ("chained", "plain"):
                began, began_cpu = time.perf_counter(), time.process_time()
                # The sink's own per-event work: message -> row (to_row), then the writer.
                for batch in batches(rows_of(values), args.batch, f"{name}{r}"):
                    writers[name].write(batch)
                wall[name].append(time.perf_counter() - began)
                cpu[name].append(time.process_time() - began_cpu)
        total = per_round * rounds
        rows = events(20_000, start + timedelta(hours=9))
        linker = Chainer(lambda keys: {})
        began = time.perf_counter()
        linker.link(rows)
        link_us = (time.perf_counter() - began) / len(rows) * 1e6
        client.close()
    plain, chained = total / sum(wall["plain"]), total / sum(wall["chained"])
    ratios = sorted(p / c for p, c in zip(wall["plain"], wall["chained"], strict=True))
    cpu_plain = sum(cpu["plain"]) / total * 1e6
    cpu_chained = sum(cpu["chained"]) / total * 1e6
    print(f"rows per variant: {total:,} in {rounds} alternating rounds, batches of {args.batch:,}")
    print(f"sink (to_row + writer) without chain: {plain:,.0f} rows/s, {cpu_plain:.1f} us CPU/row")
    print(
        f"sink (to_row + writer) with chain:    {chained:,.0f} rows/s, {cpu_chained:.1f} us CPU/row"
    )
    print(
        f"ratio with / without: {chained / plain:.2f} (rows/s; per round: median "
        f"{statistics.median(ratios):.2f}, {ratios[0]:.2f} .. {ratios[-1]:.2f}); "
        f"CPU per row {cpu_chained / cpu_plain:.2f}x"
    )
    print(f"chaining alone (canonical bytes + sha256): {link_us:.1f} us/row")


if __name__ == "__main__":
    main()
