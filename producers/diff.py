"""Field-level differences between two versions of a resource, for ``record_change``."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

_MISSING: Any = object()


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A dict, a pydantic model, a dataclass or None (nothing) as a mapping of fields."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        result = dump()
        if isinstance(result, Mapping):
            return result
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(
        f"can't compare a {type(value).__name__}: pass a dict, a pydantic model or a dataclass"
    )


def field_changes(
    before: Any, after: Any, ignore: Collection[str] = (), prefix: str = ""
) -> list[dict[str, Any]]:
    """``[{"field", "old", "new"}]`` for every field whose value differs.

    Nested mappings are compared field by field (``address.city``); any other value (lists
    included) is compared whole. A field only on one side has ``None`` on the other. Fields
    named in ``ignore`` (full dotted names) are skipped. Order: ``before``'s fields, then new ones.
    """
    old, new = as_mapping(before), as_mapping(after)
    out: list[dict[str, Any]] = []
    keys = list(old) + [k for k in new if k not in old]
    for key in keys:
        name = f"{prefix}{key}"
        if name in ignore:
            continue
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(field_changes(a, b, ignore, prefix=f"{name}."))
            continue
        if a is _MISSING:
            a = None
        if b is _MISSING:
            b = None
        if a != b or type(a) is not type(b):
            out.append({"field": name, "old": a, "new": b})
    return out
