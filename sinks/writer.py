"""Writes batches of rows (events, alerts, accounting records) to ClickHouse, idempotently.

A write either lands every row of the batch once (but the rows the store refuses on their
own, returned in ``WriteResult.refused``) or raises ``WriteFailed``; retrying the same batch
is always safe:

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

No row can wedge a write. A refusal is classified (``classify``): an *outage* (connection
errors, timeouts, too many parts, memory...) is retried as is; a *row-caused* refusal (a
known bad-data error: clickhouse-connect's ``DataError`` / ``ProgrammingError``, server codes
such as ``CANNOT_PARSE_*``, ``TYPE_MISMATCH``, ``ILLEGAL_*``...) makes the writer bisect the
refused chunk at once until it holds the refused rows alone; an unclassified refusal is
bisected only when the loop asks (``isolate``, after it repeated for the same batch), and
then a row is refused only if another row of the batch landed (a store refusing every row is
not a bad row). Refused rows are returned (``WriteResult.refused``), the rest is stored.
Every sub-chunk's token is the chunk's token plus its bisection path and the digest of its
rows: deterministic, so a retry after a crash is still a no-op for what landed.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from clickhouse_connect.driver import exceptions as ch_errors

from auditstream.integrity.chain import Chainer
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


Refusal = Literal["rows", "outage", "unknown"]
"""Why the store refused an insert: bad rows (deterministic), the store being away or
overloaded (retry), or not known (retry; bisect once it repeats for the same rows)."""

ROW_ERROR_NAMES = frozenset(
    {
        "TYPE_MISMATCH",
        "TOO_LARGE_STRING_SIZE",
        "TOO_LARGE_ARRAY_SIZE",
        "ARGUMENT_OUT_OF_BOUND",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        "CANNOT_CONVERT_TYPE",
        "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
        "INCORRECT_DATA",
        "DECIMAL_OVERFLOW",
        "SIZES_OF_ARRAYS_DONT_MATCH",
        "CANNOT_READ_ARRAY_FROM_TEXT",
        "UNEXPECTED_DATA_AFTER_PARSED_VALUE",
        "VIOLATED_CONSTRAINT",
        "CANNOT_PARSE_UUID",
        "CANNOT_PARSE_IPV4",
        "CANNOT_PARSE_IPV6",
    }
)
ROW_ERROR_PREFIXES = ("CANNOT_PARSE_", "ILLEGAL_")
ROW_ERROR_CODES = frozenset(
    {6, 26, 27, 38, 41, 43, 44, 53, 69, 70, 72, 117, 128, 131, 190, 321, 349, 407, 469}
)
"""Numbers of the names above (a message without the name still classifies)."""
OUTAGE_ERROR_NAMES = frozenset(
    {
        "TOO_MANY_PARTS",
        "TIMEOUT_EXCEEDED",
        "SOCKET_TIMEOUT",
        "NETWORK_ERROR",
        "MEMORY_LIMIT_EXCEEDED",
        "TOO_MANY_SIMULTANEOUS_QUERIES",
        "TABLE_IS_READ_ONLY",
        "NOT_ENOUGH_SPACE",
        "READONLY",
        "ABORTED",
        "QUERY_WAS_CANCELLED",
        "UNKNOWN_TABLE",
        "UNKNOWN_DATABASE",
        "NO_SUCH_COLUMN_IN_TABLE",
        "ALL_CONNECTION_TRIES_FAILED",
        "KEEPER_EXCEPTION",
        "TOO_MANY_PARTITIONS",
    }
)
OUTAGE_ERROR_CODES = frozenset(
    {159, 160, 164, 202, 209, 210, 236, 241, 242, 243, 252, 279, 394, 999}
)
_OUTAGE_TEXT = re.compile(
    r"connection (refused|reset|aborted)|timed out|broken pipe|temporarily unavailable"
    r"|name or service not known|network is unreachable",
    re.IGNORECASE,
)
"""An outage said in words (an HTTP client's error, a test's simulated one)."""
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_CODE = re.compile(r"Code: (\d+)")


def classify(exc: BaseException) -> Refusal:
    """Row-caused, outage or unknown; outage wins when a message names both."""
    if isinstance(exc, (ch_errors.OperationalError, ConnectionError, TimeoutError, OSError)):
        return "outage"
    text = str(exc)
    names = set(_NAME.findall(text))
    codes = {int(c) for c in _CODE.findall(text)}
    if names & OUTAGE_ERROR_NAMES or codes & OUTAGE_ERROR_CODES or _OUTAGE_TEXT.search(text):
        return "outage"
    if (
        isinstance(exc, (ch_errors.DataError, ch_errors.ProgrammingError))
        or names & ROW_ERROR_NAMES
        or any(n.startswith(ROW_ERROR_PREFIXES) for n in names)
        or codes & ROW_ERROR_CODES
    ):
        return "rows"
    return "unknown"


class WriteFailed(RuntimeError):
    """ClickHouse did not take the batch; nothing was committed, so retry it."""

    def __init__(self, message: str, kind: Refusal | None = None) -> None:
        """``kind``: why (default: classified from ``message``)."""
        super().__init__(message)
        self.kind: Refusal = kind or classify(RuntimeError(message))


@dataclass(frozen=True)
class RefusedRow:
    """A row of the batch the store refused on its own (``index`` into ``Batch.rows``)."""

    index: int
    error: str
    substituted: bool = False
    """A stand-in row was stored in its place (the dead-letter loop's minimal row)."""


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    already_stored: int
    seconds: float
    repeats: int = 0
    """Skipped rows recorded in ``audit_repeats`` (stage ``sink``)."""
    inserts: int = 0
    """INSERT statements this write took (chunks of partitions, repeats, bisection)."""
    refused: tuple[RefusedRow, ...] = ()
    """Rows the store refused (not stored, unless ``substituted``)."""


@dataclass(frozen=True)
class _Plan:
    fresh: list[int]
    """Indices into the batch's rows."""
    skipped: int
    repeats: list[tuple[Any, ...]]


@dataclass
class _Isolation:
    isolate: bool
    inserted: int = 0
    inserts: int = 0
    refused: list[tuple[int, str, Refusal]] = field(default_factory=list)


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
        chain: Chainer | None = None,
    ) -> None:
        """``raw_topic``: the topic ``raw_position`` columns point into (sink repeats);
        ``chain``: links each stored row into its hash chain (``audit_events`` only)."""
        self._chain = chain
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

    @property
    def chain(self) -> Chainer | None:
        return self._chain

    def write(self, batch: Batch, *, isolate: bool = False) -> WriteResult:
        """Every row stored once, or refused on its own (``WriteResult.refused``), or
        ``WriteFailed``. ``isolate``: bisect an unclassified refusal too (the loop asks once
        it repeated for this batch)."""
        started = time.perf_counter()
        rows = batch.rows
        inserts = 0
        work = _Isolation(isolate)
        try:
            plan = self._plan(rows, work)
            for index, chunk in self._chunks(rows, plan.fresh):
                self._insert_isolating(rows, chunk, f"{batch.token()}:{index}", "", work)
            # Repeats last: the event rows are the ground truth a replay re-derives repeats
            # from. Written first, a repeat row could outlive a failed events insert and a
            # replay in other batches could then store that same raw offset as the event.
            if plan.repeats:
                self._insert(
                    f"`{self._database}`.`{REPEATS_TABLE}`",
                    tuple(name for name, _ in REPEAT_COLUMNS),
                    plan.repeats,
                    f"{batch.token()}:repeats:{_digest(plan.repeats, (0, 1, 2))}",
                )
                inserts += 1
        except WriteFailed:
            raise
        except Exception as exc:
            raise WriteFailed(f"{type(exc).__name__}: {exc}", classify(exc)) from exc
        unknown = [r for r in work.refused if r[2] != "rows"]
        if unknown and work.inserted == 0 and plan.skipped == 0:
            # No row of the batch went in: the store refuses everything, not a row.
            raise WriteFailed(f"every row refused: {unknown[0][1]}", "unknown")
        return WriteResult(
            inserted=work.inserted,
            already_stored=plan.skipped,
            seconds=time.perf_counter() - started,
            repeats=len(plan.repeats),
            inserts=inserts + work.inserts,
            refused=tuple(RefusedRow(i, error) for i, error, _ in work.refused),
        )

    def _insert_isolating(
        self, rows: list[tuple[Any, ...]], chunk: list[int], base: str, path: str, work: _Isolation
    ) -> None:
        """Insert ``chunk`` (indices); refused for its rows, bisect it down to them."""
        subset = [rows[i] for i in chunk]
        digest = _digest(subset, (self._tenant, self._id))
        token = f"{base}:{digest}" if not path else f"{base}:{path}:{digest}"
        work.inserts += 1
        try:
            if self._chain is not None:  # linked per attempt: only stored rows move a head
                subset = self._chain.link(subset)
            self._insert(self._table, self._spec.column_names, subset, token)
        except Exception as exc:
            if self._chain is not None:
                self._chain.forget(subset)
            kind = classify(exc)
            error = f"{type(exc).__name__}: {exc}"
            if kind == "outage" or (kind == "unknown" and not work.isolate):
                raise WriteFailed(error, kind) from exc
            if len(chunk) > 1:
                middle = len(chunk) // 2
                self._insert_isolating(rows, chunk[:middle], base, path + "0", work)
                self._insert_isolating(rows, chunk[middle:], base, path + "1", work)
                return
            work.refused.append((chunk[0], error, kind))
            return
        if self._chain is not None:
            self._chain.advance(subset)
        work.inserted += len(chunk)

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

    def _plan(self, rows: list[tuple[Any, ...]], work: _Isolation) -> _Plan:
        if not self._spec.check_stored:
            return _Plan(list(range(len(rows))), 0, [])
        stored = self._stored_isolating(rows, list(range(len(rows))), work)
        refused = {r[0] for r in work.refused}
        kept: dict[Identity, Position] = {}
        fresh: list[int] = []
        repeats: list[tuple[Any, ...]] = []
        skipped = 0
        for index, row in enumerate(rows):
            if index in refused:
                continue
            identity = (row[self._tenant], row[self._id].int)
            position = self._position(row)
            if identity in stored:
                known = stored[identity]
            elif identity in kept:  # the normalizer's window may miss a far-apart repeat
                known = {kept[identity]}
            else:
                kept[identity] = position
                fresh.append(index)
                continue
            skipped += 1
            if position is not None and position not in known:
                repeats.append(self._repeat(row, position))
        return _Plan(fresh, skipped, repeats)

    def _repeat(self, row: tuple[Any, ...], position: tuple[int, int]) -> tuple[Any, ...]:
        tenant, event_id = row[self._tenant], row[self._id]
        return (self._raw_topic, *position, tenant, event_id, "sink", self._now())

    def _stored_isolating(
        self, rows: list[tuple[Any, ...]], indices: list[int], work: _Isolation
    ) -> dict[Identity, set[Position]]:
        """``_already_stored``; refused for the rows it is asked about (a value the query's
        parameters cannot take), bisected down to them like an insert."""
        try:
            return self._already_stored([rows[i] for i in indices])
        except Exception as exc:
            kind = classify(exc)
            error = f"{type(exc).__name__}: {exc}"
            if kind == "outage" or (kind == "unknown" and not work.isolate) or not indices:
                raise WriteFailed(error, kind) from exc
            if len(indices) == 1:
                work.refused.append((indices[0], error, kind))
                return {}
            middle = len(indices) // 2
            out = self._stored_isolating(rows, indices[:middle], work)
            for identity, positions in self._stored_isolating(rows, indices[middle:], work).items():
                out.setdefault(identity, set()).update(positions)
            return out

    def _already_stored(self, rows: list[tuple[Any, ...]]) -> dict[Identity, set[Position]]:
        """(tenant, id) pairs of these rows that are stored, with the raw positions they
        were stored from (a replay after a crash, or a repeat)."""
        if not rows:
            return {}
        spec = self._spec
        raw = "" if spec.raw_position is None else ", " + ", ".join(spec.raw_position)
        result = self._client.query(
            # Server-side parameters: a batch's ids would overflow max_query_size as SQL text.
            # The tenants x ids filter over-selects (a cross product); _plan matches pairs.
            # No time range: identity is (tenant, id) whatever time a copy claims (a re-send
            # re-stamped days later is a repeat, not a second row). The tenant prefix of the
            # sort key and the id's bloom-filter index keep this to few granules.
            f"SELECT {spec.tenant_column}, {spec.id_column}{raw} FROM {self._table} "
            f"WHERE {spec.tenant_column} IN {{tenants:Array(String)}} "
            f"AND {spec.id_column} IN {{ids:Array(UUID)}}",
            parameters={
                "tenants": sorted({r[self._tenant] for r in rows}),
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
    def _chunks(self, rows: list[tuple[Any, ...]], fresh: list[int]) -> list[tuple[int, list[int]]]:
        """``fresh`` (indices) in chunks of at most ``max_partitions`` months, numbered by the
        months of the whole batch (so a chunk keeps its number when a retry skips other rows)."""
        months = sorted({_month(r[self._time]) for r in rows})
        chunk_of = {m: i // self._max_partitions for i, m in enumerate(months)}
        chunks: dict[int, list[int]] = {}
        for index in fresh:
            chunks.setdefault(chunk_of[_month(rows[index][self._time])], []).append(index)
        return sorted(chunks.items())


class EventWriter(BatchWriter):
    """Writes ``audit_events`` (and the sink's repeats)."""

    def __init__(
        self, client: Any, database: str, raw_topic: str = "", chain: Chainer | None = None
    ) -> None:
        super().__init__(client, database, EVENTS, raw_topic=raw_topic, chain=chain)


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
