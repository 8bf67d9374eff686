"""Export row writers: CSV, JSON Lines, Excel (.xlsx) and Parquet, one event row at a time.

Each writer takes rows as they come (``rows`` is an iterator fed by keyset steps of
``query.EXPORT_CHUNK`` rows) and writes them to a binary file, so no export holds its whole
result in memory. ``stream_text`` yields CSV / JSON Lines as bytes for a direct response.

The cells:

* timestamps: ISO 8601 UTC with milliseconds (``2026-11-22T01:41:39.123Z``);
* ``changes``: a JSON array of ``{"field", "old", "new"}`` (old / new as the JSON values
  the producer sent); ``metadata``: a JSON object;
* CSV is RFC 4180 (``,``, ``"`` quoting, CRLF) with a header even when no row matches, and
  formula-safe: a text cell starting with ``=``, ``+``, ``-``, ``@``, tab, CR or LF gets a
  leading ``'`` unless it is a plain number (``-5``, ``-74.01`` stay numbers);
* Excel: the same text, stored as text cells (never formulas); Parquet: typed columns
  (timestamps, doubles, ``changes`` as a list of structs with JSON-text old / new).

``WriteResult`` (rows, bytes, SHA-256 of the file) is what tamper-evidence proof material
(issue #10) will sign; ``write`` is the one place a file is produced, so that is where it
hooks in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from auditstream.api.query import EventRow, from_ms
from auditstream.schemas.event import format_ts


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    XLSX = "xlsx"
    PARQUET = "parquet"


MEDIA_TYPES: dict[Format, str] = {
    Format.CSV: "text/csv; charset=utf-8",
    Format.JSONL: "application/x-ndjson",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Format.PARQUET: "application/vnd.apache.parquet",
}

COLUMNS: tuple[str, ...] = (
    "event_id", "tenant_id", "occurred_at", "received_at", "action", "outcome",
    "actor_id", "actor_type", "actor_display_name", "actor_email", "resource_type",
    "resource_id", "resource_name", "ip", "session_id", "user_agent", "channel", "country",
    "region", "city", "latitude", "longitude", "changes", "correlation_id",
    "parent_event_id", "metadata",
)  # fmt: skip
"""The columns of every export, in order."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
XLSX_MAX_ROWS = 1_048_575
"""Data rows per Excel sheet (its limit is 1,048,576 rows, the header included)."""


def record(row: EventRow) -> dict[str, Any]:
    """An event row as export values (timestamps as ``datetime``, JSON parts decoded)."""
    v = row.values
    return {
        "event_id": row.event_id,
        "tenant_id": v["tenant_id"],
        "occurred_at": row.occurred_at,
        "received_at": from_ms(int(v["received_ms"])),
        "action": v["action"],
        "outcome": v["outcome"],
        "actor_id": v["actor_id"],
        "actor_type": v["actor_type"],
        "actor_display_name": v["actor_display_name"],
        "actor_email": v["actor_email"],
        "resource_type": v["resource_type"],
        "resource_id": v["resource_id"],
        "resource_name": v["resource_name"],
        "ip": v["ip"],
        "session_id": v["session_id"],
        "user_agent": v["user_agent"],
        "channel": v["channel"],
        "country": v["country"],
        "region": v["region"],
        "city": v["city"],
        "latitude": v["latitude"],
        "longitude": v["longitude"],
        "changes": row.changes,
        "correlation_id": v["correlation_id"],
        "parent_event_id": v["parent_event_id"] or None,
        "metadata": row.metadata(),
    }


def text_of(value: Any) -> str:
    """A value as export text: ISO timestamps, JSON for lists and objects, '' for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    if hasattr(value, "isoformat"):
        return format_ts(value)
    return str(value)


def formula_safe(text: str) -> str:
    """``'`` before a cell that a spreadsheet would run as a formula; numbers untouched."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def csv_cells(values: Iterable[Any]) -> list[str]:
    return [formula_safe(text_of(v)) for v in values]


def _csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(cells)
    return out.getvalue().encode()


def _jsonl_line(rec: dict[str, Any]) -> bytes:
    doc = {
        **rec,
        "occurred_at": format_ts(rec["occurred_at"]),
        "received_at": format_ts(rec["received_at"]),
    }
    return orjson.dumps(doc) + b"\n"


def stream_text(fmt: Format, rows: Iterator[EventRow], batch: int = 500) -> Iterator[bytes]:
    """CSV or JSON Lines as chunks of bytes (the CSV header first, even with no rows)."""
    if fmt not in (Format.CSV, Format.JSONL):
        raise ValueError(f"{fmt} is written to a file (write)")
    buf: list[bytes] = []
    if fmt is Format.CSV:
        buf.append(_csv_line(list(COLUMNS)))
    for row in rows:
        rec = record(row)
        if fmt is Format.CSV:
            buf.append(_csv_line(csv_cells(rec[c] for c in COLUMNS)))
        else:
            buf.append(_jsonl_line(rec))
        if len(buf) >= batch:
            yield b"".join(buf)
            buf.clear()
    if buf or fmt is Format.CSV:
        yield b"".join(buf)


@dataclass(frozen=True)
class WriteResult:
    rows: int
    bytes: int
    sha256: str


class _Hashing:
    """A binary file that counts and hashes what goes through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._fh.write(data)


Progress = Callable[[int], None]


def write(
    fmt: Format, rows: Iterator[EventRow], path: Path, progress: Progress | None = None
) -> WriteResult:
    """Write an export file at ``path``; ``progress(rows_so_far)`` now and then."""
    done = 0

    def counted() -> Iterator[EventRow]:
        nonlocal done
        for row in rows:
            yield row
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(done)

    # The file is the tenant's data: only this service's user may read it, from the start.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(path, 0o600)
    if fmt in (Format.CSV, Format.JSONL):
        with path.open("wb") as raw:
            out = _Hashing(raw)
            for chunk in stream_text(fmt, counted()):
                out.write(chunk)
    elif fmt is Format.XLSX:
        _write_xlsx(counted(), path)
    else:
        _write_parquet(counted(), path)
    if progress is not None:
        progress(done)
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return WriteResult(rows=done, bytes=path.stat().st_size, sha256=sha.hexdigest())


def _write_xlsx(rows: Iterator[EventRow], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    sheet: Any = None
    in_sheet = XLSX_MAX_ROWS

    def cell(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        c = WriteOnlyCell(sheet, value=text_of(value))
        c.data_type = "s"  # text, never a formula, whatever it starts with
        return c

    for row in rows:
        if in_sheet >= XLSX_MAX_ROWS:
            sheet = wb.create_sheet(f"events{len(wb.worksheets) + 1}")
            sheet.append(list(COLUMNS))
            in_sheet = 0
        rec = record(row)
        sheet.append([cell(rec[c]) for c in COLUMNS])
        in_sheet += 1
    if sheet is None:
        sheet = wb.create_sheet("events1")
        sheet.append(list(COLUMNS))
    wb.save(path)


def _parquet_schema() -> Any:
    import pyarrow as pa

    fields: list[Any] = []
    for name in COLUMNS:
        if name in ("occurred_at", "received_at"):
            fields.append(pa.field(name, pa.timestamp("ms", tz="UTC"), nullable=False))
        elif name in ("latitude", "longitude"):
            fields.append(pa.field(name, pa.float64()))
        elif name == "changes":
            change = pa.struct([("field", pa.string()), ("old", pa.string()), ("new", pa.string())])
            fields.append(pa.field(name, pa.list_(change)))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


def _parquet_value(name: str, value: Any) -> Any:
    if name == "changes":
        return [
            {"field": c["field"], "old": orjson.dumps(c["old"]).decode(),
             "new": orjson.dumps(c["new"]).decode()}
            for c in value
        ]  # fmt: skip
    if name == "metadata":
        return orjson.dumps(value).decode()
    return value


def _write_parquet(rows: Iterator[EventRow], path: Path, batch: int = 10_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        pending = 0

        def flush() -> None:
            nonlocal pending
            writer.write_table(pa.table(columns, schema=schema))
            for values in columns.values():
                values.clear()
            pending = 0

        for row in rows:
            rec = record(row)
            for c in COLUMNS:
                columns[c].append(_parquet_value(c, rec[c]))
            pending += 1
            if pending >= batch:
                flush()
        if pending:
            flush()
