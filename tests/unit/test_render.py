"""CSV output: RFC 4180 quoting, and cells a spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from auditstream.cli.render import csv_cell, to_csv
from auditstream.sinks.query import QueryResult


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("\ncmd", "'\ncmd"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        (-5, "'-5"),
    ],
)
def test_formula_starts_get_a_leading_quote(value: Any, expected: str) -> None:
    assert csv_cell(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("1-2", "1-2"),
        ("", ""),
        (None, ""),
        (42, "42"),
        (1.5, "1.5"),
        ("'quoted", "'quoted"),
        (" =not first", " =not first"),
    ],
)
def test_other_cells_unchanged(value: Any, expected: str) -> None:
    assert csv_cell(value) == expected


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_to_csv_header_rows_and_crlf() -> None:
    result = QueryResult(["tenant", "n"], ["String", "UInt64"], [["acme", 3], ["b", None]])
    assert to_csv(result) == "tenant,n\r\nacme,3\r\nb,\r\n"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a,b", '"a,b"'),
        ('say "hi"', '"say ""hi"""'),
        ("two\nlines", '"two\nlines"'),
        ("cr\rhere", '"cr\rhere"'),
    ],
)
def test_to_csv_quotes_per_rfc_4180(value: str, encoded: str) -> None:
    result = QueryResult(["c"], ["String"], [[value]])
    assert to_csv(result) == f"c\r\n{encoded}\r\n"
    assert parse(to_csv(result)) == [["c"], [value]]


def test_to_csv_neutralises_formulas_in_rows_and_header() -> None:
    result = QueryResult(["=cmd", "ok"], ["String", "String"], [["=1+2,3", "@x"], ["+a", "-b"]])
    text = to_csv(result)
    assert text.splitlines()[1] == "\"'=1+2,3\",'@x"
    assert parse(text) == [["'=cmd", "ok"], ["'=1+2,3", "'@x"], ["'+a", "'-b"]]


def test_to_csv_newline_start_is_quoted_and_neutralised() -> None:
    result = QueryResult(["c"], ["String"], [["\n=1"]])
    assert to_csv(result) == 'c\r\n"\'\n=1"\r\n'
    assert parse(to_csv(result)) == [["c"], ["'\n=1"]]


def test_to_csv_round_trips_safe_values() -> None:
    rows = [["a", "b,c", 'd"e', "f\r\ng", "", "x y"]]
    result = QueryResult(["1", "2", "3", "4", "5", "6"], ["String"] * 6, rows)
    assert parse(to_csv(result)) == [["1", "2", "3", "4", "5", "6"], rows[0]]


def test_to_csv_empty_result_is_header_only() -> None:
    assert to_csv(QueryResult(["a", "b"], ["String", "String"], [])) == "a,b\r\n"


# -- table output: data is plain text, control characters visible ---------------------------
HOSTILE = ["[/]", "[bold]loud[/bold]", "\x1b[31mred\x1b[0m", "abc\u202edcba", "a\x00b\x9bc"]


def _table_output(values: list[str]) -> str:
    from rich.console import Console

    from auditstream.cli.render import print_result
    from auditstream.sinks.query import QueryResult

    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    print_result(console, QueryResult(["v"], ["String"], [[v] for v in values]), "table")
    return out.getvalue()


def test_markup_in_stored_values_is_shown_not_interpreted() -> None:
    text = _table_output(HOSTILE[:2])  # "[/]" used to crash rich with a MarkupError
    assert "[/]" in text
    assert "[bold]loud[/bold]" in text


def test_control_characters_become_visible_escapes() -> None:
    text = _table_output(HOSTILE[2:])
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\x00" not in text
    assert "\x9b" not in text
    assert "\\x1b[31mred\\x1b[0m" in text
    assert "abc\\u202edcba" in text
    assert "a\\x00b\\x9bc" in text


def test_csv_and_json_stay_exact() -> None:
    from auditstream.sinks.query import QueryResult

    result = QueryResult(["v"], ["String"], [[v] for v in HOSTILE])
    rows = list(csv.reader(io.StringIO(to_csv(result))))
    assert [r[0] for r in rows[1:]] == HOSTILE
    import orjson

    assert [r[0] for r in orjson.loads(result.to_json())["rows"]] == HOSTILE


def test_visible_keeps_ordinary_text() -> None:
    from auditstream.cli.render import visible

    assert visible("Zoë 東京 ok") == "Zoë 東京 ok"
    assert visible("a\nb\tc") == "a\\nb\\tc"
    assert visible(None) == ""
