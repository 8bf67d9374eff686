"""What an identifier may contain, and which JSON values are kept exactly.

Shared by the pydantic model (``event.py``), the SDK's fast path (``producers/fastpath.py``)
and the detectors' trusted decode (``stream_jobs/trusted.py``), so the three agree.

**Identifiers** (tenant, actor, resource and session ids, resource type, correlation id,
change field names, the action) are compared, grouped and shown to people: a character that
can't be seen or that reorders the text around it would let one id pass for another
(``admin\u200b`` for ``admin``, ``\u202egnp.exe`` for ``exe.png``). They refuse:

* C0 and C1 control characters, NUL and DEL included (U+0000-001F, U+007F-009F);
* bidirectional formatting: U+061C, U+200E, U+200F, U+202A-202E, U+2066-2069;
* zero-width characters: U+200B-200D, U+2060, U+FEFF.

Free text (display names, resource names, e-mail, user agent, metadata and change values)
keeps them; whoever renders it escapes them.

**JSON values** (change ``old`` / ``new``, metadata) are stored as JSON text. Every stage
reads them with a parser that keeps integers exact within 64 bits and turns larger ones into
floats, so an integer outside ``-2**63 .. 2**64 - 1`` is refused, not rounded (send it as
a string to keep every digit). NaN and Infinity have no JSON form (pydantic would write
``null``), so they are refused too; so is nesting deeper than ``MAX_VALUE_DEPTH`` levels.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
MAX_VALUE_DEPTH = 64
"""How deep containers may nest in a change value, or in ``metadata`` (which is the first)."""

FORBIDDEN_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),  # C0 controls, NUL included
    (0x007F, 0x009F),  # DEL and C1 controls
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x200B, 0x200F),  # ZERO WIDTH SPACE, NON-JOINER, JOINER; LEFT-TO-RIGHT, RIGHT-TO-LEFT MARK
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2060),  # WORD JOINER
    (0x2066, 0x2069),  # bidi isolates
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE (BOM)
)

_CLASS = "".join(
    re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
    for low, high in FORBIDDEN_RANGES
)
_FORBIDDEN = re.compile(f"[{_CLASS}]")

IDENTIFIER_PATTERN = (
    "^[^"
    + "".join(
        chr(low) if low == high else f"{chr(low)}-{chr(high)}" for low, high in FORBIDDEN_RANGES
    )
    + "]*$"
)
"""The same rule as a JSON Schema (ECMA-262) pattern: literal code points in one class."""

_CONTROL_NAMES = {
    0x00: "NUL",
    0x07: "BELL",
    0x08: "BACKSPACE",
    0x09: "CHARACTER TABULATION",
    0x0A: "LINE FEED",
    0x0B: "LINE TABULATION",
    0x0C: "FORM FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
    0x85: "NEXT LINE",
}


def code_point(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``; control characters have no Unicode name."""
    number = ord(char)
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(number, "control character")
    return f"U+{number:04X} ({name})"


def identifier_problem(value: str) -> str | None:
    """Why ``value`` can't be an identifier (None: it can)."""
    if value.isprintable():  # every forbidden character is unprintable (Cc or Cf)
        return None
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    return (
        f"{code_point(found.group())} at position {found.start()} is not allowed in an "
        "identifier (control, bidirectional-formatting and zero-width characters are refused)"
    )


def check_identifier(value: str) -> str:
    """A pydantic after-validator: ``value``, or ``ValueError`` naming the code point."""
    problem = identifier_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def json_value_problem(value: Any) -> str | None:
    """Why ``value`` can't be kept exactly as JSON (None: it can).

    Only numbers and nesting are judged; other Python values (datetimes, UUIDs ...) are
    written as pydantic writes them.
    """
    found = _walk(value, 0)
    if found is None:
        return None
    path, message = found
    if not path:
        return message
    where = "".join(
        f"[{json.dumps(part, ensure_ascii=True)}]" if isinstance(part, str) else f"[{part}]"
        for part in reversed(path)
    )
    return f"{message} (at {where})"


def check_json_value(value: Any) -> Any:
    """A pydantic after-validator for any-JSON fields."""
    problem = json_value_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _walk(value: Any, depth: int) -> tuple[list[Any], str] | None:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return None
    if kind is int or (kind is not bool and isinstance(value, int)):
        if MIN_INT <= value <= MAX_INT:
            return None
        return [], (
            f"integer {_describe_int(int(value))} is outside the range kept exactly "
            f"({MIN_INT} .. {MAX_INT}); send it as a string"
        )
    if kind is float or isinstance(value, float):
        if math.isfinite(value):
            return None
        return [], f"{float(value)!r} is not a finite number (JSON has no NaN or Infinity)"
    items: Any
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    else:
        return None
    if depth >= MAX_VALUE_DEPTH:
        return [], f"nested deeper than {MAX_VALUE_DEPTH} levels"
    for key, item in items:
        inner = type(item)
        if inner is str or inner is bool or item is None:  # the common case, without a call
            continue
        if inner is int and MIN_INT <= item <= MAX_INT:
            continue
        found = _walk(item, depth + 1)
        if found is not None:
            found[0].append(key)
            return found
    return None


def _describe_int(value: int) -> str:
    bits = value.bit_length()
    if bits > 512:  # str() of a huge int is slow (and refused past 4300 digits)
        return f"of {bits} bits"
    text = str(value)
    return text if len(text) <= 40 else f"{text[:12]}…{text[-6:]} ({len(text.lstrip('-'))} digits)"
