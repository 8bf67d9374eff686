"""``docs/api-reference.md``, generated from the app's OpenAPI schema.

python -m auditstream.api.reference          # rewrite the file
python -m auditstream.api.reference --check  # fail if it is out of date (a unit test does)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auditstream.config import ApiSettings

REFERENCE_FILE = Path(__file__).resolve().parent.parent / "docs" / "api-reference.md"


def schema() -> dict[str, Any]:
    from auditstream.api.app import Context, create_app
    from auditstream.api.jobs import Jobs
    from auditstream.api.tokens import TokenStore

    @contextlib.contextmanager
    def no_store() -> Iterator[Any]:
        raise RuntimeError("the reference needs no store")
        yield  # pragma: no cover

    ctx = Context(
        api=ApiSettings(), database="auditstream", sessions=no_store,
        tokens=TokenStore(Path("/nonexistent/tokens.json")), jobs=Jobs(Path("/nonexistent")),
    )  # fmt: skip
    doc: dict[str, Any] = create_app(ctx).openapi()
    return doc


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"] if s.get("type") != "null")
    if spec.get("type") == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if "enum" in spec:
        return " / ".join(f"`{v}`" for v in spec["enum"])
    kind = str(spec.get("type", "any"))
    return f"{kind} ({spec['format']})" if "format" in spec else kind


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render() -> str:
    doc = schema()
    lines = [
        "# API reference",
        "",
        "Generated from the OpenAPI schema (`python -m auditstream.api.reference`); the live",
        "schema is at `/openapi.json` and browsable at `/docs` on a running API. Every request",
        'needs `Authorization: Bearer <token>`; errors are `{"error": {"code", "message",',
        '"missing_permission"?}}`. Guide: [api.md](api.md).',
        "",
    ]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            lines += [f"## `{method.upper()} {path}`", ""]
            summary = (op.get("description") or op.get("summary") or "").strip()
            if summary:
                lines += [" ".join(summary.split()), ""]
            params = op.get("parameters", [])
            if params:
                lines += [
                    "| parameter | in | type | default | |",
                    "| --- | --- | --- | --- | --- |",
                ]
                for p in params:
                    s = p.get("schema", {})
                    default = s.get("default", "")
                    lines.append(
                        f"| `{p['name']}` | {p['in']} | {_cell(_type(s))} | "
                        f"{_cell(default) if default != '' else ''} | "
                        f"{_cell(p.get('description', ''))} |"
                    )
                lines.append("")
            ok = {c: r for c, r in op.get("responses", {}).items() if c.startswith("2")}
            for code, response in ok.items():
                content = response.get("content", {})
                kinds = ", ".join(
                    f"{_type(v['schema'])}" if v.get("schema") else f"`{k}`"
                    for k, v in content.items()
                )
                lines += [f"Returns {code}: {kinds or response.get('description', '')}", ""]
    lines += ["## Models", ""]
    for name, model in doc.get("components", {}).get("schemas", {}).items():
        if name in ("HTTPValidationError", "ValidationError"):
            continue
        lines += [f"### {name}", ""]
        if model.get("description"):
            lines += [" ".join(model["description"].split()), ""]
        props = model.get("properties", {})
        if props:
            lines += ["| field | type | |", "| --- | --- | --- |"]
            for field, spec in props.items():
                lines.append(
                    f"| `{field}` | {_cell(_type(spec))} | {_cell(spec.get('description', ''))} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not REFERENCE_FILE.exists() or REFERENCE_FILE.read_text() != text:
            print(f"{REFERENCE_FILE.name} is out of date: run python -m auditstream.api.reference")
            return 1
        print(f"{REFERENCE_FILE.name} matches the API")
        return 0
    REFERENCE_FILE.write_text(text)
    print(f"wrote {REFERENCE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
