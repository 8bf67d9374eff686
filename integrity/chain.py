"""The hash chains the sink writes (docs/decisions/0005-tamper-evidence.md).

A chain is ``(tenant_id, kafka_partition, UTC day of occurred_at)``: one tenant's events
read from one partition of the normalized topic about one day, in offset order. Each record
carries ``chain_seq`` (1, 2, ...), ``chain_prev`` (the previous record's hash, ``GENESIS`` for
the first) and ``record_hash`` (``schemas.record.record_hash``, which covers the link too).

``Chainer`` keeps the head of every chain the writer has touched. It lives on the events
loop's writer thread and is driven by ``BatchWriter``:

* ``link(rows)`` gives fresh rows (never a row the writer skipped as already stored) their
  links from the current heads, *without* moving them;
* ``advance(rows)`` moves the heads once the INSERT of those rows returned;
* ``forget(rows)`` drops the heads of their chains after a failed INSERT (it may have landed
  all the same: the next batch reads the heads from the store);
* a head not known yet (a restart, a partition newly assigned, a failure) is read from the
  store, so a restarted sink continues its chains instead of forking them, and a replayed
  batch, whose rows are skipped as stored, adds nothing. In the sink that read goes through
  ``integrity/trust.py``, which adopts only heads the sink can vouch for;
* with a ``journal``, ``link`` writes the heads the rows will reach to it *before* they are
  inserted (the sink's write-ahead ``intents.jsonl``), and ``signed`` compacts it.

``changed()`` hands the checkpointer (``integrity/checkpoints.py``) the heads that moved since
it last asked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from auditstream.schemas.record import FIELD_NAMES, GENESIS, chain_day, record_hash

ChainKey = tuple[str, int, str]
"""(tenant, kafka partition, day ``YYYY-MM-DD``)."""

_TENANT = FIELD_NAMES.index("tenant_id")
_PARTITION = FIELD_NAMES.index("kafka_partition")
_OCCURRED = FIELD_NAMES.index("occurred_at")
_SEQ = FIELD_NAMES.index("chain_seq")
_PREV = FIELD_NAMES.index("chain_prev")
_HASH = len(FIELD_NAMES)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def chain_of(row: tuple[Any, ...]) -> ChainKey:
    return (row[_TENANT], int(row[_PARTITION]), chain_day(row[_OCCURRED]))


HeadReader = Callable[[set[ChainKey]], dict[ChainKey, Head]]
"""Reads the stored heads of these chains (chains with no rows are left out)."""


class Journal(Protocol):
    def append(self, heads: dict[ChainKey, Head]) -> None: ...

    def compact(self, signed: dict[ChainKey, Head]) -> None: ...


class Chainer:
    def __init__(self, read_heads: HeadReader, journal: Journal | None = None) -> None:
        self._read = read_heads
        self._journal = journal
        self._heads: dict[ChainKey, Head] = {}
        self._lock = threading.Lock()
        self._changed: dict[ChainKey, Head] = {}
        self._forget_partitions: set[int] = set()
        self._pending: dict[ChainKey, Head] = {}

    def link(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` (in offset order per partition) with their chain links filled in."""
        with self._lock:
            if self._forget_partitions:
                gone = self._forget_partitions
                self._heads = {k: h for k, h in self._heads.items() if k[1] not in gone}
                self._forget_partitions = set()
        keys = [chain_of(r) for r in rows]
        unknown = {k for k in keys if k not in self._heads}
        if unknown:
            self._heads.update(self._read(unknown))
        heads = dict(self._heads)
        out: list[tuple[Any, ...]] = []
        for key, row in zip(keys, rows, strict=True):
            head = heads.get(key)
            seq, prev = (1, GENESIS) if head is None else (head.seq + 1, head.hash)
            linked = (*row[:_SEQ], seq, prev)
            digest = record_hash(linked)
            out.append((*linked, digest, *row[_HASH + 1 :]))
            heads[key] = Head(seq, digest)
        if self._journal is not None:  # ahead of the INSERT: what a restart may vouch for
            self._journal.append({k: heads[k] for k in dict.fromkeys(keys)})
        return out

    def advance(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """The rows are stored: their chains' heads move to them."""
        for row in rows:
            key, head = chain_of(row), Head(int(row[_SEQ]), row[_HASH])
            current = self._heads.get(key)
            if current is None or head.seq > current.seq:
                self._heads[key] = head
                with self._lock:
                    self._changed[key] = head

    def forget(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """An INSERT of these rows failed (or may have landed): read their heads again."""
        for row in rows:
            self._heads.pop(chain_of(row), None)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions (re)assigned to this sink: another one may have written them meanwhile
        (called from the consumer's thread; applied by the next ``link``)."""
        with self._lock:
            self._forget_partitions |= set(partitions)

    def changed(self) -> dict[ChainKey, Head]:
        """Heads moved since the last call (for a checkpoint); the checkpointer's thread."""
        with self._lock:
            out, self._changed = self._changed, {}
        return out

    def signed(self, heads: dict[ChainKey, Head]) -> None:
        """A checkpoint signed these heads (the checkpointer's thread)."""
        if self._journal is not None:
            self._journal.compact(heads)

    def restore_changed(self, heads: dict[ChainKey, Head]) -> None:
        """A checkpoint could not be written: offer these heads again next time."""
        with self._lock:
            for key, head in heads.items():
                current = self._changed.get(key)
                if current is None or current.seq < head.seq:
                    self._changed[key] = head


def store_heads(client: Any, database: str, table: str = "audit_events") -> HeadReader:
    """A ``HeadReader`` querying the store (the writer's own client, on its thread)."""

    def read(keys: set[ChainKey]) -> dict[ChainKey, Head]:
        days = sorted({k[2] for k in keys})
        lo = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
        hi = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=1)
        result = client.query(
            "SELECT tenant_id, kafka_partition, toString(toDate(occurred_at, 'UTC')), "
            f"max(chain_seq), argMax(record_hash, chain_seq) FROM `{database}`.`{table}` "
            "WHERE tenant_id IN {tenants:Array(String)} "
            "AND kafka_partition IN {parts:Array(UInt32)} "
            "AND occurred_at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND occurred_at < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "AND chain_seq > 0 GROUP BY 1, 2, 3",
            parameters={
                "tenants": sorted({k[0] for k in keys}),
                "parts": sorted({k[1] for k in keys}),
                "lo": int(lo.timestamp() * 1000),
                "hi": int(hi.timestamp() * 1000),
            },
        )
        out: dict[ChainKey, Head] = {}
        for tenant, partition, day, seq, digest in result.result_rows:
            key = (str(tenant), int(partition), str(day))
            if key in keys:
                out[key] = Head(int(seq), str(digest))
        return out

    return read
