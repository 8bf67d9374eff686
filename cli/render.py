"""Query results as a readable table, CSV (safe to open in a spreadsheet) or JSON.

Stored values are data, never markup or terminal control: a table renders every cell as
plain ``Text`` (no rich markup, no highlighting) with control characters (C0, DEL, C1,
ESC, bidirectional overrides and isolates, zero-width marks) shown as visible escapes such
as ``\\x1b`` or ``\\u202e``. CSV and JSON stay exact (CSV neutralises formulas only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from auditstream.sinks.query import QueryResult

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")

_INVISIBLE = frozenset(
    [
        *range(0x00, 0x20),  # C0, ESC included
        *range(0x7F, 0xA0),  # DEL, C1 (CSI included)
        *(0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF),  # marks, zero-widths
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        *range(0x2066, 0x206A),  # bidi isolates
    ]
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(value: Any) -> str:
    """A cell's text with control and direction-changing characters as visible escapes."""
    text = "" if value is None else str(value)
    if not any(ord(ch) in _INVISIBLE for ch in text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code not in _INVISIBLE:
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def cell(value: Any) -> Text:
    """A table cell: plain text, never interpreted as markup."""
    return Text(visible(value))


def csv_cell(value: Any) -> str:
    """Neutralise spreadsheet formulas: a cell that starts like one gets a leading ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([csv_cell(c) for c in result.columns])
    for row in result.rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: Sequence[bool] = (),
) -> Table:
    t = Table(
        title=None if title is None else cell(title),
        title_justify="left",
        header_style="bold",
        highlight=False,
    )
    for i, name in enumerate(columns):
        t.add_column(cell(name), justify="right" if i < len(numeric) and numeric[i] else "left")
    for row in rows:
        t.add_row(*[cell(v) for v in row])
    return t


def result_table(result: QueryResult, title: str | None = None) -> Table:
    numeric = [t.startswith(("UInt", "Int", "Float", "Decimal")) for t in result.types]
    return table(title, result.columns, result.rows, numeric)


def print_result(console: Console, result: QueryResult, fmt: str) -> None:
    if fmt == "csv":
        console.file.write(to_csv(result))
    elif fmt == "json":
        console.file.write(result.to_json().decode() + "\n")
    else:
        console.print(result_table(result), markup=False, highlight=False)
        console.print(Text(f"{len(result.rows)} rows", style="dim"))
