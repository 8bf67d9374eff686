"""Writes batches of event rows to ClickHouse, idempotently.

A write either lands every row of the batch once or raises ``WriteFailed``; retrying the
same batch is always safe: rows whose event id is already stored are skipped, and the
insert carries a deduplication token derived from the batch's offsets.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditstream.sinks.batch import Batch
from auditstream.sinks.tables import EVENT_COLUMN_NAMES, EVENTS_TABLE

_ID = EVENT_COLUMN_NAMES.index("event_id")
_TENANT = EVENT_COLUMN_NAMES.index("tenant_id")
_OCCURRED = EVENT_COLUMN_NAMES.index("occurred_at")


class WriteFailed(RuntimeError):
    """ClickHouse did not take the batch; nothing was committed, so retry it."""


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    already_stored: int
    seconds: float


class EventWriter:
    def __init__(self, client: Any, database: str) -> None:
        self._client = client
        self._table = f"`{database}`.`{EVENTS_TABLE}`"

    def write(self, batch: Batch) -> WriteResult:
        started = time.perf_counter()
        rows = batch.rows
        try:
            stored = self._already_stored(rows)
            fresh = _unique(r for r in rows if r[_ID] not in stored)
            if fresh:
                self._client.insert(
                    self._table,
                    list(zip(*fresh, strict=True)),
                    column_names=list(EVENT_COLUMN_NAMES),
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
        times: list[datetime] = [r[_OCCURRED] for r in rows]
        result = self._client.query(
            # Server-side parameters: a batch's ids would overflow max_query_size as SQL text.
            f"SELECT event_id FROM {self._table} "
            "WHERE tenant_id IN {tenants:Array(String)} "
            "AND occurred_at BETWEEN fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "AND event_id IN {ids:Array(UUID)}",
            parameters={
                "tenants": sorted({r[_TENANT] for r in rows}),
                "lo": _millis(min(times)),
                "hi": _millis(max(times)),
                "ids": [r[_ID] for r in rows],
            },
        )
        return {row[0] for row in result.result_rows}


def _unique(rows: Any) -> list[tuple[Any, ...]]:
    """First row per event id: the normalizer's window may miss a far-apart repeat."""
    seen: set[uuid.UUID] = set()
    out = []
    for row in rows:
        if row[_ID] not in seen:
            seen.add(row[_ID])
            out.append(row)
    return out


def _millis(value: datetime) -> int:
    return int(value.timestamp()) * 1000 + value.microsecond // 1000
