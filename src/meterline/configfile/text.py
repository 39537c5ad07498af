"""What `meterline apply` and `meterline export` print: the changes, one object a line
(``+`` create, ``~`` update with a line per field, ``-`` delete), errors with the file's
line, and the document as YAML."""

from __future__ import annotations

import json
from typing import Any

import yaml

from meterline.configfile.document import Located
from meterline.configfile.schemas import ApplyResult, Change

_SIGN = {"create": "+", "update": "~", "delete": "-"}


def _value(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def _heading(change: Change) -> str:
    text = f"{_SIGN[change.action]} {change.object} {change.key}"
    if change.object == "plan" and change.version is not None and change.action == "update":
        text += f" (version {change.version - 1} → {change.version})"
    return text


def changes(result: ApplyResult) -> list[str]:
    lines: list[str] = []
    for change in result.changes:
        lines.append(_heading(change))
        lines.extend(
            f"    {field.field}: {_value(field.old)} → {_value(field.new)}"
            for field in change.fields
        )
    for key in result.not_pruned:
        lines.append(f"  plan {key} is not in the file: kept (plans are never deleted)")
    counts = {action: sum(c.action == action for c in result.changes) for action in _SIGN}
    summary = (
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete, {result.unchanged} unchanged"
        if not result.applied
        else f"{counts['create']} created, {counts['update']} updated, "
        f"{counts['delete']} deleted, {result.unchanged} unchanged"
    )
    lines.append(summary + (" (dry run: nothing changed)." if not result.applied else "."))
    return lines


def errors(source: str, located: Located, found: list[dict[str, str]], detail: str) -> list[str]:
    """One line per invalid field: ``FILE:LINE: path: message``."""
    if not found:
        return [f"{source}: {detail}"]
    lines = []
    for error in found:
        line = located.line_of(error["field"])
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {error['field']}: {error['message']} ({error['code']})")
    return lines


def as_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
