"""Reading a configuration file (YAML, of which JSON is a subset) and remembering where
each value was written, so an error names the file's line, not only the field's path.

Pure: it knows no database and no domain, only YAML and dotted paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


class FileError(Exception):
    """The file cannot be read as a configuration document (not YAML, not a mapping,
    a key written twice): ``line`` is 1-based, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class Located:
    """A parsed document and the line of every key and list item in it."""

    data: dict[str, Any]
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of the deepest part of a dotted ``path`` the file spells out
        (``plans.pro.features.ocr.price.unit_price``); None when not even its first part
        is in the file."""
        parts = tuple(path.split(".")) if path else ()
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None


def _walk(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = ".".join((*path, key))
                raise FileError(f"{where} is written twice (lines {seen[key]} and {line})", line)
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, str(index))] = item.start_mark.line + 1
            _walk(item, (*path, str(index)), lines)


def load(text: str) -> Located:
    """Parse ``text``; the top level must be a mapping (an empty file is an empty one)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located({})
        lines: dict[tuple[str, ...], int] = {}
        _walk(node, (), lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise FileError(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise FileError(f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise FileError("the file must be a mapping with meters:, plans: and workspace:", 1)
    return Located(data, lines)
