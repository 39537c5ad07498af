"""What no stored JSON may hold: the NUL character, and nesting deeper than any reader.

PostgreSQL refuses NUL in text (SQLite stores it and then cuts strings at it), and JSON
nested hundreds of levels deep is stored fine but cannot be read back (orjson, like most
encoders, stops at a few hundred levels). Both are refused at the edge — a path segment,
a query value, a body, an event's properties — with a clear error instead of failing in
the database or on the way out (a 500).
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
MAX_DEPTH = 32  # objects and arrays inside each other; real metadata uses a handful


def problem(value: Any) -> tuple[str, str, str] | None:
    """(dotted path, code, message) of the first thing in a parsed JSON value that
    cannot be stored, or None. Codes: ``invalid_character`` (a NUL in a key or string),
    ``too_deep`` (nesting past ``MAX_DEPTH``)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return path, "invalid_character", "must not contain the NUL character (\\u0000)"
            continue
        if not isinstance(node, dict | list):
            continue
        if depth >= MAX_DEPTH:
            return path, "too_deep", f"JSON is nested at most {MAX_DEPTH} levels deep"
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and NUL in key:
                return here, "invalid_character", "keys must not contain the NUL character"
            stack.append((item, here, depth + 1))
    return None
