"""The committed JSON Schema is what the model generates (producers in other languages use it)."""

from __future__ import annotations

import json

from auditstream.schemas import jsonschema
from auditstream.schemas.event import AuditEvent


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
