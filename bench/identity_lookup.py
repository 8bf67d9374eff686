"""What the sink's already-stored check costs without a time range (identity is
(tenant, event_id), whatever time a re-sent copy claims): the lookup ``BatchWriter`` runs per
batch, against a store holding ``--stored`` events of a few tenants spread over ``--days``
days, timed as it runs now (tenant + ids, the bloom-filter index on ``event_id``) and as it
ran before (tenant + the batch's time range + ids), alternating, in one run.

    .venv/bin/python -m auditstream.bench.identity_lookup [--stored 600000] [--days 60]
        [--batch 5000] [--rounds 8]

Prints the median time per lookup of each and their ratio. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from auditstream.bench.chain_cost import events
from auditstream.config import ClickHouseSettings
from auditstream.sinks import store, tables
from auditstream.sinks.batch import Batch
from auditstream.sinks.tables import EVENTS
from auditstream.sinks.writer import BatchWriter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=600_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as home:
        client = store.open_admin(ClickHouseSettings(dsn=f"chdb://{home}", database="default"))
        tables.ensure(client, "bench", 3650)
        writer = BatchWriter(client, "bench", EVENTS)
        step = max(1, args.stored // 30)
        spacing = timedelta(days=args.days) / args.stored
        for first in range(0, args.stored, step):
            rows = events(min(step, args.stored - first), start + spacing * first)
            batch = Batch(max_rows=10**9, max_seconds=3600)
            for i, row in enumerate(rows):
                batch.add(row, "bench", 0, first + i)
            writer.write(batch)
            print(f"\rstored {first + len(rows):,} / {args.stored:,}", end="", flush=True)
        print()
        fresh = events(args.batch, start + timedelta(days=args.days // 2))
        spec = EVENTS
        ids = [r[spec.index_of(spec.id_column)] for r in fresh]
        tenants = sorted({r[spec.index_of(spec.tenant_column)] for r in fresh})
        times = [r[spec.index_of(spec.time_column)] for r in fresh]

        def now_query() -> Any:
            return writer._already_stored(fresh)

        def before_query() -> Any:
            return client.query(
                "SELECT tenant_id, event_id FROM bench.audit_events "
                "WHERE tenant_id IN {tenants:Array(String)} AND occurred_at BETWEEN "
                "fromUnixTimestamp64Milli({lo:Int64}, 'UTC') AND "
                "fromUnixTimestamp64Milli({hi:Int64}, 'UTC') AND event_id IN {ids:Array(UUID)}",
                parameters={
                    "tenants": tenants,
                    "lo": int(min(times).timestamp() * 1000),
                    "hi": int(max(times).timestamp() * 1000),
                    "ids": ids,
                },
            )

        took: dict[str, list[float]] = {"without time range (now)": [], "with time range": []}
        for _ in range(args.rounds):
            for name, run in (
                ("without time range (now)", now_query),
                ("with time range", before_query),
            ):
                t0 = time.perf_counter()
                run()
                took[name].append(time.perf_counter() - t0)
        medians = {k: statistics.median(v) for k, v in took.items()}
        print(f"{args.stored:,} stored over {args.days} days, lookups of {args.batch:,} ids:")
        for name, value in medians.items():
            print(f"  {name:<26} {value * 1000:8.1f} ms median of {args.rounds}")
        ratio = medians["without time range (now)"] / medians["with time range"]
        print(f"  ratio now / before: {ratio:.2f}x")


if __name__ == "__main__":
    main()
