"""Query results as a readable table, CSV (safe to open in a spreadsheet) or JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from auditstream.sinks.query import QueryResult

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


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
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(columns):
        t.add_column(name, justify="right" if i < len(numeric) and numeric[i] else "left")
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
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
        console.print(result_table(result))
        console.print(f"[dim]{len(result.rows)} rows[/dim]")
