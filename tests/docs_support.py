"""Running the examples of a Markdown page (the README, a page of docs/) as a reader
would, in order.

Every fenced ``bash`` or ``python`` block is an example. The HTML comment right above a
fence says how it runs (default ``demo``):

- ``<!-- example: demo -->`` — against one `meterline serve --demo` started for the page
  (``localhost:8000`` and the key placeholder ``ml_…`` are replaced by the real ones).
  Every ``curl`` must answer below 400 unless its ``# →`` comment names the status;
  the scalar fields a ``# → {…}`` comment shows must be in the answer (``…`` elides).
- ``<!-- example: shell -->`` — in an empty folder with the ``meterline`` command.
- ``<!-- example: postgres -->`` — like shell, with ``METERLINE_DATABASE_URL`` (and any
  ``postgresql://…`` in the block) pointing at a fresh PostgreSQL database.
- ``<!-- example: benchmark -->`` — benchmark commands, each run at a small scale
  (``METERLINE_BENCH_QUICK=1``) so the test proves they work, not their figures.
- ``<!-- example: ci -->`` — lines `.ci/run` runs itself (checked to be there).
- ``<!-- example: path/to/file -->`` — the block is that file (``test_readme_examples``),
  which its own tests run; ``<!-- NAME -->`` — a block a test reads by that name and runs
  (``support.readme_block``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*example:\s*([\w-]+)(.*?)-->\s*$")
FILE = re.compile(r"^[\w.-]+(/[\w.-]+)+$")  # <!-- example: examples/js/quickstart.mjs -->
NAMED = re.compile(r"^<!--\s*([\w-]+)\s*-->$")  # <!-- js-build -->: a test reads it by name
LANGS = {"bash", "python"}


@dataclass
class Example:
    page: str
    line: int
    lang: str
    kind: str
    text: str
    options: str = ""

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def _page_name(path: Path) -> str:
    """``README.md``, or a site page's path from ``docs/`` on (``docs/api/events.md``)."""
    parts = path.parts
    return "/".join(parts[parts.index("docs") :]) if "docs" in parts else path.name


def examples(path: Path) -> list[Example]:
    """The runnable blocks of a page, in order."""
    found: list[Example] = []
    lines = path.read_text().splitlines()
    inside: tuple[str, int, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if inside is None and match:
            lang = match.group(1)
            previous = next((lines[i] for i in range(number - 2, -1, -1) if lines[i].strip()), "")
            mark = MARK.match(previous.strip())
            kind, options = (mark.group(1), mark.group(2).strip()) if mark else ("demo", "")
            named = NAMED.match(previous.strip())
            if previous.strip() in ("<!-- run-command -->", "<!-- test-command -->"):
                kind = "setup"  # the README's two commands: CI runs them as written
            elif mark and FILE.match(mark.group(1) + mark.group(2).strip()):
                kind, options = "file", (mark.group(1) + mark.group(2)).strip()
            elif named and not mark:
                kind, options = "named", named.group(1)
            inside = (lang, number, kind, options)
            body = []
        elif inside is not None and line.startswith("```"):
            lang, start, kind, options = inside
            if lang in LANGS:
                found.append(Example(_page_name(path), start, lang, kind, "\n".join(body), options))
            inside = None
        elif inside is not None:
            body.append(line)
    return found


@dataclass
class Expectation:
    call: int  # which curl of the page (0-based)
    text: str


def expectations(text: str, first_call: int) -> list[Expectation]:
    """The ``# → …`` comments of a block, each tied to the curl call just before it."""
    found = []
    calls = first_call
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith("# →"):
            parts = [stripped[3:]]
            while index + 1 < len(lines) and re.match(r"^\s*#\s{2,}", lines[index + 1]):
                index += 1
                parts.append(lines[index].strip()[1:])
            found.append(Expectation(calls - 1, " ".join(parts)))
        elif not stripped.startswith("#"):
            calls += len(re.findall(r"(?:^|[\s;&|(])curl\s", line))
        index += 1
    return found


def count_calls(text: str) -> int:
    return sum(
        len(re.findall(r"(?:^|[\s;&|(])curl\s", line))
        for line in text.splitlines()
        if not line.strip().startswith("#")
    )


_PAIR = re.compile(r'"(\w+)":\s*("(?:[^"\\…]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)(?=\s*[,}\]])')


def pairs(expected: str) -> list[tuple[str, Any]]:
    """The complete ``"key": scalar`` pairs a comment shows (elided ones are skipped)."""
    return [(key, json.loads(value)) for key, value in _PAIR.findall(expected)]


def contains(answer: Any, key: str, value: Any) -> bool:
    """Whether ``key: value`` is somewhere in a JSON answer."""
    if isinstance(answer, dict):
        if key in answer and answer[key] == value:
            return True
        return any(contains(v, key, value) for v in answer.values())
    if isinstance(answer, list):
        return any(contains(v, key, value) for v in answer)
    return False


@dataclass
class Call:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Transcript:
    calls: list[Call] = field(default_factory=list)


CURL_WRAPPER = r"""
set -euo pipefail
__calls="$MD_CALLS"
curl() {
  local n
  n=$(($(ls "$__calls" | wc -l) / 2))
  command curl -sS -o "$__calls/$n.body" -w '%{http_code}' "$@" > "$__calls/$n.status"
  cat "$__calls/$n.body"; echo
}
"""


def read_calls(folder: Path) -> list[Call]:
    count = len(list(folder.glob("*.status")))
    return [
        Call(int((folder / f"{n}.status").read_text() or 0), (folder / f"{n}.body").read_text())
        for n in range(count)
    ]
