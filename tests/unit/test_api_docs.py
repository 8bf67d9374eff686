"""The API reference is generated from the code, and the tables reference names every column."""

from __future__ import annotations

from pathlib import Path

from auditstream.api import reference
from auditstream.sinks import tables

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_api_reference_matches_the_app() -> None:
    assert reference.REFERENCE_FILE.read_text() == reference.render(), (
        "docs/api-reference.md is out of date: python -m auditstream.api.reference"
    )


def test_every_route_is_in_the_reference() -> None:
    text = reference.REFERENCE_FILE.read_text()
    for path, methods in reference.schema()["paths"].items():
        for method in methods:
            assert f"`{method.upper()} {path}`" in text


def test_tables_reference_names_every_column() -> None:
    text = (DOCS / "tables.md").read_text()
    for spec in (tables.EVENTS, tables.ALERTS, tables.DEAD_LETTERS, tables.REPEATS):
        assert f"## `{spec.name}`" in text
        for column in spec.column_names:
            assert f"| `{column}` |" in text, f"{spec.name}.{column}"
