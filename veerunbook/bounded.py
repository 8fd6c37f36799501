"""Bounding journaled values so one huge or deeply nested value cannot lose a record."""

from __future__ import annotations

import json
from typing import Any

from veerunbook.journal import to_json_value
from veerunbook.redact import Redactor

# Larger field values are journaled as a masked excerpt, so one huge response from a
# target cannot push a line past the journal's 1 MiB line limit and lose the check.
MAX_FIELD_BYTES = 64 * 1024
EXCERPT_CHARS = 4000
MAX_FIELD_DEPTH = 64


def depth(value: Any) -> int:
    """Return the nesting depth of lists and dicts, without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, level)
            if level > MAX_FIELD_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def bounded(value: Any, redactor: Redactor) -> Any:
    """Return ``value``, or a masked excerpt of its JSON when that is too large."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth(value) > MAX_FIELD_DEPTH:
        return {"omitted": f"a value nested deeper than {MAX_FIELD_DEPTH} levels"}
    try:
        encoded = json.dumps(to_json_value(value), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return {"omitted": f"a {type(value).__name__} that cannot be encoded as JSON"}
    if len(encoded.encode("utf-8", "replace")) <= MAX_FIELD_BYTES:
        return value
    masked = redactor.mask(encoded)
    return {"omitted_bytes": len(encoded), "excerpt": masked[:EXCERPT_CHARS]}
