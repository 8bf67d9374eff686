"""Writes batches of rows (events, alerts, accounting records) to ClickHouse, idempotently.

A write either lands every row of the batch once or raises ``WriteFailed``; retrying the
same batch is always safe:

- identity is (tenant_id, id): a row whose pair is already stored (a replay after a crash,
  or a repeat the normalizer's window missed) is skipped. Skipped from *another* raw
  position, it is a repeat, recorded in ``audit_repeats`` (stage ``sink``) in the same write;
  from the same raw position it is a redelivery of the same record, and nothing is recorded.
- rows go in chunks touching at most ``max_partitions`` monthly partitions (ClickHouse
  refuses an INSERT touching more than ``max_partitions_per_insert_block``, 100 by default:
  a batch spanning more would be retried forever);
- every INSERT carries a deduplication token derived from the batch's offsets, the chunk's
  index and the rows it holds: a retried insert of the same rows is a no-op, and an insert
  of other rows (after part of a chunk landed and its rows are now skipped) never reuses a
  token (ClickHouse would drop it as a duplicate of the first attempt).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditstream.sinks.batch import Batch
from auditstream.sinks.tables import (
    EVENTS,
    NO_RAW_PARTITION,
    REPEAT_COLUMNS,
    REPEATS_TABLE,
    TableSpec,
)

MAX_PARTITIONS_PER_INSERT = 50
"""Below ClickHouse's default ``max_partitions_per_insert_block`` (100), with room."""

Position = tuple[int, int] | None
Identity = tuple[str, int]
"""(tenant, id), the id (a UUID) as its integer: ``uuid.UUID.__hash__`` is Python code."""


class WriteFailed(RuntimeError):
    """ClickHouse did not take the batch; nothing was committed, so retry it."""


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    already_stored: int
    seconds: float
    repeats: int = 0
    """Skipped rows recorded in ``audit_repeats`` (stage ``sink``)."""
    inserts: int = 0
    """INSERT statements this write took (chunks of partitions, repeats)."""


@dataclass(frozen=True)
class _Plan:
    fresh: list[tuple[Any, ...]]
    skipped: int
    repeats: list[tuple[Any, ...]]


class BatchWriter:
    def __init__(
        self,
        client: Any,
        database: str,
        spec: TableSpec,
        *,
        raw_topic: str = "",
        max_partitions: int = MAX_PARTITIONS_PER_INSERT,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``raw_topic``: the topic ``raw_position`` columns point into (sink repeats)."""
        if max_partitions < 1:
            raise ValueError("max_partitions must be at least 1")
        self._client = client
        self._spec = spec
        self._database = database
        self._table = f"`{database}`.`{spec.name}`"
        self._id = spec.index_of(spec.id_column)
        self._tenant = spec.index_of(spec.tenant_column)
        self._time = spec.index_of(spec.time_column)
        self._raw = (
            None
            if spec.raw_position is None
            else (spec.index_of(spec.raw_position[0]), spec.index_of(spec.raw_position[1]))
        )
        self._raw_topic = raw_topic
        self._max_partitions = max_partitions
        self._now = now

    @property
    def client(self) -> Any:
        return self._client

    @property
    def spec(self) -> TableSpec:
        return self._spec

    def write(self, batch: Batch) -> WriteResult:
        started = time.perf_counter()
        rows = batch.rows
        inserts = 0
        try:
            plan = self._plan(rows)
            if plan.repeats:
                self._insert(
                    f"`{self._database}`.`{REPEATS_TABLE}`",
                    tuple(name for name, _ in REPEAT_COLUMNS),
                    plan.repeats,
                    f"{batch.token()}:repeats:{_digest(plan.repeats, (0, 1, 2))}",
                )
                inserts += 1
            for index, chunk in self._chunks(rows, plan.fresh):
                token = f"{batch.token()}:{index}:{_digest(chunk, (self._tenant, self._id))}"
                self._insert(self._table, self._spec.column_names, chunk, token)
                inserts += 1
        except Exception as exc:
            raise WriteFailed(f"{type(exc).__name__}: {exc}") from exc
        return WriteResult(
            inserted=len(plan.fresh),
            already_stored=plan.skipped,
            seconds=time.perf_counter() - started,
            repeats=len(plan.repeats),
            inserts=inserts,
        )

    def _insert(
        self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], token: str
    ) -> None:
        self._client.insert(
            table,
            list(zip(*rows, strict=True)),
            column_names=list(columns),
            column_oriented=True,
            settings={"insert_deduplication_token": token},
        )

    # -- which rows go in ------------------------------------------------------------------
    def _position(self, row: tuple[Any, ...]) -> Position:
        if self._raw is None or row[self._raw[0]] == NO_RAW_PARTITION:
            return None
        return int(row[self._raw[0]]), int(row[self._raw[1]])

    def _plan(self, rows: list[tuple[Any, ...]]) -> _Plan:
        if not self._spec.check_stored:
            return _Plan(list(rows), 0, [])
        stored = self._already_stored(rows)
        kept: dict[Identity, Position] = {}
        fresh: list[tuple[Any, ...]] = []
        repeats: list[tuple[Any, ...]] = []
        skipped = 0
        for row in rows:
            identity = (row[self._tenant], row[self._id].int)
            position = self._position(row)
            if identity in stored:
                known = stored[identity]
            elif identity in kept:  # the normalizer's window may miss a far-apart repeat
                known = {kept[identity]}
            else:
                kept[identity] = position
                fresh.append(row)
                continue
            skipped += 1
            if position is not None and position not in known:
                repeats.append(self._repeat(row, position))
        return _Plan(fresh, skipped, repeats)

    def _repeat(self, row: tuple[Any, ...], position: tuple[int, int]) -> tuple[Any, ...]:
        tenant, event_id = row[self._tenant], row[self._id]
        return (self._raw_topic, *position, tenant, event_id, "sink", self._now())

    def _already_stored(self, rows: list[tuple[Any, ...]]) -> dict[Identity, set[Position]]:
        """(tenant, id) pairs of these rows that are stored, with the raw positions they
        were stored from (a replay after a crash, or a repeat)."""
        if not rows:
            return {}
        spec = self._spec
        times: list[datetime] = [r[self._time] for r in rows]
        raw = "" if spec.raw_position is None else ", " + ", ".join(spec.raw_position)
        result = self._client.query(
            # Server-side parameters: a batch's ids would overflow max_query_size as SQL text.
            # The tenants x ids filter over-selects (a cross product); _plan matches pairs.
            f"SELECT {spec.tenant_column}, {spec.id_column}{raw} FROM {self._table} "
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
        # Pairs the cross product let in that no row of the batch has are never looked up.
        out: dict[Identity, set[Position]] = {}
        for found in result.result_rows:
            identity = (found[0], found[1].int)
            position: Position = None
            if spec.raw_position is not None and found[2] != NO_RAW_PARTITION:
                position = (int(found[2]), int(found[3]))
            out.setdefault(identity, set()).add(position)
        return out

    # -- how they go in --------------------------------------------------------------------
    def _chunks(
        self, rows: list[tuple[Any, ...]], fresh: list[tuple[Any, ...]]
    ) -> list[tuple[int, list[tuple[Any, ...]]]]:
        """``fresh`` in chunks of at most ``max_partitions`` months, numbered by the months
        of the whole batch (so a chunk keeps its number when a retry skips other rows)."""
        months = sorted({_month(r[self._time]) for r in rows})
        chunk_of = {m: i // self._max_partitions for i, m in enumerate(months)}
        chunks: dict[int, list[tuple[Any, ...]]] = {}
        for row in fresh:
            chunks.setdefault(chunk_of[_month(row[self._time])], []).append(row)
        return sorted(chunks.items())


class EventWriter(BatchWriter):
    """Writes ``audit_events`` (and the sink's repeats)."""

    def __init__(self, client: Any, database: str, raw_topic: str = "") -> None:
        super().__init__(client, database, EVENTS, raw_topic=raw_topic)


def _month(value: datetime) -> int:
    """``toYYYYMM`` of the value in UTC: the tables' partition key."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.year * 100 + value.month


def _plain(value: Any) -> Any:
    return value.int if isinstance(value, uuid.UUID) else value


def _digest(rows: list[tuple[Any, ...]], columns: tuple[int, ...]) -> str:
    text = "\x1e".join("\x1f".join(str(_plain(row[i])) for i in columns) for row in rows)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _millis(value: datetime) -> int:
    return int(value.timestamp()) * 1000 + value.microsecond // 1000
