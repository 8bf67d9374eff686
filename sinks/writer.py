"""Writes batches of rows (events or alerts) to ClickHouse, idempotently.

A write either lands every row of the batch once or raises ``WriteFailed``; retrying the
same batch is always safe: rows whose id is already stored are skipped, and the
insert carries a deduplication token derived from the batch's offsets.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditstream.sinks.batch import Batch
from auditstream.sinks.tables import EVENTS, TableSpec


class WriteFailed(RuntimeError):
    """ClickHouse did not take the batch; nothing was committed, so retry it."""


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    already_stored: int
    seconds: float


class BatchWriter:
    def __init__(self, client: Any, database: str, spec: TableSpec) -> None:
        self._client = client
        self._spec = spec
        self._table = f"`{database}`.`{spec.name}`"
        self._id = spec.index_of(spec.id_column)
        self._tenant = spec.index_of(spec.tenant_column)
        self._time = spec.index_of(spec.time_column)

    def write(self, batch: Batch) -> WriteResult:
        started = time.perf_counter()
        rows = batch.rows
        try:
            stored = self._already_stored(rows)
            fresh = _unique((r for r in rows if r[self._id] not in stored), self._id)
            if fresh:
                self._client.insert(
                    self._table,
                    list(zip(*fresh, strict=True)),
                    column_names=list(self._spec.column_names),
                    column_oriented=True,
                    settings={"insert_deduplication_token": batch.token()},
                )
        except Exception as exc:
            raise WriteFailed(f"{type(exc).__name__}: {exc}") from exc
        return WriteResult(len(fresh), len(rows) - len(fresh), time.perf_counter() - started)

    def _already_stored(self, rows: list[tuple[Any, ...]]) -> set[uuid.UUID]:
        """Ids of these rows that a previous run stored (a replay after a crash)."""
        if not rows:
            return set()
        spec = self._spec
        times: list[datetime] = [r[self._time] for r in rows]
        result = self._client.query(
            # Server-side parameters: a batch's ids would overflow max_query_size as SQL text.
            f"SELECT {spec.id_column} FROM {self._table} "
            f"WHERE {spec.tenant_column} IN {{tenants:Array(String)}} "
            f"AND {spec.time_column} BETWEEN fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC') "
            "AND fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            f"AND {spec.id_column} IN {{ids:Array(UUID)}}",
            parameters={
                "tenants": sorted({r[self._tenant] for r in rows}),
                "lo": _millis(min(times)),
                "hi": _millis(max(times)),
                "ids": [r[self._id] for r in rows],
            },
        )
        return {row[0] for row in result.result_rows}


class EventWriter(BatchWriter):
    """Writes ``audit_events``."""

    def __init__(self, client: Any, database: str) -> None:
        super().__init__(client, database, EVENTS)


def _unique(rows: Any, id_index: int) -> list[tuple[Any, ...]]:
    """First row per id: the normalizer's window may miss a far-apart repeat."""
    seen: set[uuid.UUID] = set()
    out = []
    for row in rows:
        if row[id_index] not in seen:
            seen.add(row[id_index])
            out.append(row)
    return out


def _millis(value: datetime) -> int:
    return int(value.timestamp()) * 1000 + value.microsecond // 1000
