"""The committed JSON Schema is what the model generates (producers in other languages use it)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from auditstream.schemas import jsonschema
from auditstream.schemas.event import AuditEvent
from auditstream.schemas.values import IDENTIFIER_PATTERN, identifier_problem


def test_committed_json_schema_matches_model() -> None:
    """Drift test: after changing the model, regenerate with ``jsonschema.write()``."""
    committed = jsonschema.SCHEMA_FILE.read_text()
    assert committed == jsonschema.render(), (
        f"{jsonschema.SCHEMA_FILE.name} is stale: regenerate it with "
        "`python -c 'from auditstream.schemas import jsonschema; jsonschema.write()'`"
    )


def test_schema_file_is_named_for_the_version() -> None:
    assert jsonschema.SCHEMA_FILE.name == "audit_event.v1.schema.json"
    assert jsonschema.SCHEMA_FILE.exists()


def test_generated_schema_header_and_shape() -> None:
    schema = jsonschema.generate()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "auditstream/audit_event.v1.schema.json"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(AuditEvent.model_fields)
    assert set(schema["required"]) == {"occurred_at", "tenant_id", "actor", "action", "resource"}


def test_generated_schema_lists_the_standard_actions() -> None:
    text = jsonschema.render()
    for verb in ("create", "sign_in", "integration_disconnect"):
        assert f'"{verb}"' in text


def test_render_is_stable_sorted_json() -> None:
    text = jsonschema.render()
    assert text.endswith("}\n")
    assert text == jsonschema.render()
    assert json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text


def test_write_writes_render(tmp_path) -> None:
    target = tmp_path / "schema.json"
    assert jsonschema.write(target) == target
    assert target.read_text() == jsonschema.render()


def _at(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    node: dict[str, Any] = schema
    for part in path:
        node = node[part]
    if "anyOf" in node:  # optional: the string branch
        node = next(branch for branch in node["anyOf"] if branch.get("type") == "string")
    return node


IDENTIFIER_PATHS = [
    ("properties", "tenant_id"),
    ("properties", "session_id"),
    ("properties", "correlation_id"),
    ("$defs", "Actor", "properties", "id"),
    ("$defs", "Resource", "properties", "id"),
    ("$defs", "Resource", "properties", "type"),
    ("$defs", "FieldChange", "properties", "field"),
]


@pytest.mark.parametrize("path", IDENTIFIER_PATHS, ids="/".join)
def test_identifiers_carry_the_hidden_character_pattern(path: tuple[str, ...]) -> None:
    assert _at(jsonschema.generate(), *path)["pattern"] == IDENTIFIER_PATTERN


def test_the_committed_file_is_ascii_with_escaped_code_points() -> None:
    text = jsonschema.SCHEMA_FILE.read_text()
    assert text.isascii()
    assert "\\u202e" in text


def _code_points() -> list[int]:
    """Every code point up to U+3000, then every one ending in 00 or ff, plus a few named."""
    points = set(range(0x3000)) | {0xFEFF, 0xFFFD, 0x1F642, 0xE0001, 0x10FFFF}
    points |= {p for p in range(0x3000, 0x110000) if p & 0xFF in (0x00, 0xFF)}
    return sorted(p for p in points if not 0xD800 <= p <= 0xDFFF)  # no surrogates in JSON


def test_the_pattern_refuses_exactly_what_the_model_refuses() -> None:
    pattern = re.compile(IDENTIFIER_PATTERN)  # a plain class: ECMA-262 and Python agree
    for point in _code_points():
        text = f"a{chr(point)}b"
        assert (pattern.fullmatch(text) is not None) == (identifier_problem(text) is None), (
            f"U+{point:04X}"
        )


@pytest.mark.parametrize("point", [0x00, 0x1F, 0x7F, 0x9F, 0x61C, 0x200B, 0x202E, 0x2069, 0xFEFF])
def test_the_model_refuses_what_the_pattern_refuses(point: int) -> None:
    pattern = re.compile(IDENTIFIER_PATTERN)
    text = f"a{chr(point)}b"
    assert pattern.fullmatch(text) is None
    with pytest.raises(ValidationError, match=f"U\\+{point:04X}"):
        AuditEvent.model_validate(
            {
                "occurred_at": "2026-01-01T00:00:00Z",
                "tenant_id": text,
                "actor": {"id": "u"},
                "action": "create",
                "resource": {"type": "t", "id": "1"},
            }
        )


def test_timestamps_carry_the_store_range() -> None:
    schema = jsonschema.generate()
    for node in (
        _at(schema, "properties", "occurred_at"),
        _at(schema, "properties", "received_at"),
    ):
        pattern = re.compile(node["pattern"])
        for year in (1970, 1999, 2026, 2105):
            assert pattern.match(f"{year}-01-01T00:00:00Z"), year
        for year in (1969, 2106, 2200, 999):
            assert not pattern.match(f"{year:04d}-01-01T00:00:00Z"), year
    description = _at(schema, "properties", "occurred_at")["description"]
    assert "1970-01-01 .. 2105-12-31" in description
    assert "AUDITSTREAM_RETENTION_DAYS" in description


def test_any_values_state_the_exactness_rule() -> None:
    schema = jsonschema.generate()
    for node in (
        _at(schema, "$defs", "FieldChange", "properties", "old"),
        _at(schema, "$defs", "FieldChange", "properties", "new"),
        _at(schema, "properties", "metadata"),
    ):
        assert "18446744073709551615" in node["description"]
        assert "finite numbers only" in node["description"]
