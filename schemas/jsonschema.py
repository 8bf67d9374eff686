"""The JSON Schema that producers in other languages validate against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditstream.schemas.event import SCHEMA_VERSION, AuditEvent

SCHEMA_FILE = Path(__file__).with_name(f"audit_event.v{SCHEMA_VERSION}.schema.json")


def generate() -> dict[str, Any]:
    schema = AuditEvent.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"auditstream/audit_event.v{SCHEMA_VERSION}.schema.json",
        **schema,
    }


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def write(path: Path = SCHEMA_FILE) -> Path:
    path.write_text(render())
    return path
