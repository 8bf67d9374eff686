"""Export cells and files: RFC 4180 CSV, formula-safe, numbers intact, every format parsed back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest

from auditstream.api import exports
from auditstream.api.exports import COLUMNS, Format
from auditstream.api.query import ROW_NAMES, EventRow


def _row(**over: object) -> EventRow:
    base: dict[str, object] = {name: "" for name in ROW_NAMES}
    base |= {
        "event_id": "0190c0de-0000-7000-8000-000000000001", "tenant_id": "acme",
        "occurred_ms": 1764676800123, "received_ms": 1764676800456, "actor_id": "usr_1",
        "action": "update", "resource_type": "invoice", "resource_id": "INV-7",
        "resource_name": "=HYPERLINK(\"http://x\")", "latitude": -74.01, "longitude": None,
        "changes_field": ["amount", "note"], "changes_old": ["-5", '"a,b"'],
        "changes_new": ["80", '"line1\\nline2 \\"q\\""'], "metadata": '{"k": [1, 2]}',
        "parent_event_id": "",
    }  # fmt: skip
    base |= over
    return EventRow.of([base[name] for name in ROW_NAMES])


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+2", "'=1+2"), ("+SUM(A1)", "'+SUM(A1)"), ("@cmd", "'@cmd"), ("-2+3", "'-2+3"),
        ("\tx", "'\tx"), ("\rx", "'\rx"), ("\nx", "'\nx"), ("-5", "-5"), ("-74.01", "-74.01"),
        ("+1", "+1"), ("-1e5", "-1e5"), ("-", "'-"), ("plain", "plain"), ("", ""),
    ],
)  # fmt: skip
def test_formula_safe(text: str, safe: str) -> None:
    assert exports.formula_safe(text) == safe


def test_csv_is_rfc4180_and_parses_back() -> None:
    body = b"".join(exports.stream_text(Format.CSV, iter([_row(), _row(resource_name="a\r\nb")])))
    assert body.count(b"\r\n") >= 3  # CRLF line ends
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0] == list(COLUMNS)
    first = dict(zip(COLUMNS, rows[1], strict=True))
    assert first["occurred_at"] == "2025-12-02T12:00:00.123Z"
    assert first["resource_name"] == '\'=HYPERLINK("http://x")'
    assert first["latitude"] == "-74.01"
    assert first["longitude"] == ""
    assert orjson.loads(first["changes"]) == [
        {"field": "amount", "old": -5, "new": 80},
        {"field": "note", "old": "a,b", "new": 'line1\nline2 "q"'},
    ]
    assert orjson.loads(first["metadata"]) == {"k": [1, 2]}
    assert dict(zip(COLUMNS, rows[2], strict=True))["resource_name"] == "a\r\nb"


def test_csv_header_even_when_empty() -> None:
    body = b"".join(exports.stream_text(Format.CSV, iter([])))
    assert body.decode() == ",".join(COLUMNS) + "\r\n"


def test_jsonl_xlsx_parquet_parse_back(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from openpyxl import load_workbook

    rows = [_row(), _row(event_id="0190c0de-0000-7000-8000-000000000002")]
    lines = b"".join(exports.stream_text(Format.JSONL, iter(rows))).splitlines()
    doc = orjson.loads(lines[0])
    assert doc["occurred_at"] == "2025-12-02T12:00:00.123Z"
    assert doc["changes"][0] == {"field": "amount", "old": -5, "new": 80}

    done = exports.write(Format.XLSX, iter(rows), tmp_path / "x.xlsx")
    assert done.rows == 2
    sheet = load_workbook(tmp_path / "x.xlsx").worksheets[0]
    values = list(sheet.values)
    assert list(values[0]) == list(COLUMNS)
    cell = dict(zip(COLUMNS, values[1], strict=True))
    assert cell["resource_name"] == '=HYPERLINK("http://x")'  # kept as text, not a formula
    assert sheet.cell(2, COLUMNS.index("resource_name") + 1).data_type == "s"
    assert cell["latitude"] == -74.01

    done = exports.write(Format.PARQUET, iter(rows), tmp_path / "x.parquet")
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.num_rows == 2 == done.rows
    assert table.column_names == list(COLUMNS)
    first = table.to_pylist()[0]
    assert first["occurred_at"].isoformat() == "2025-12-02T12:00:00.123000+00:00"
    assert first["changes"][1] == {
        "field": "note",
        "old": '"a,b"',
        "new": '"line1\\nline2 \\"q\\""',
    }


def test_empty_files_have_their_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from openpyxl import load_workbook

    exports.write(Format.PARQUET, iter([]), tmp_path / "e.parquet")
    assert pq.read_table(tmp_path / "e.parquet").column_names == list(COLUMNS)
    exports.write(Format.XLSX, iter([]), tmp_path / "e.xlsx")
    assert list(next(load_workbook(tmp_path / "e.xlsx").worksheets[0].values)) == list(COLUMNS)


@pytest.mark.parametrize("fmt", list(Format))
def test_export_files_are_readable_by_their_owner_only(tmp_path: Path, fmt: Format) -> None:
    """An export is the tenant's data: 0600 whatever the umask, in every format."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = tmp_path / f"x.{fmt.value}"
        exports.write(fmt, iter([]), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
