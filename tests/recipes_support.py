"""The recipes' programs (examples/recipes/NAME/), run as a reader runs them against a
real `meterline serve`: `python recipe.py` with `METERLINE_URL` and `METERLINE_API_KEY`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from cli_support import METERLINE

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"
JS = ROOT / "clients" / "js"


@dataclass
class Recipe:
    """A recipe's folder and the server it runs against."""

    name: str
    base: str
    key: str
    database_url: str
    env: dict[str, str]

    @property
    def folder(self) -> Path:
        return RECIPES / self.name

    def http(self, key: str | None = None) -> httpx2.Client:
        """An HTTP client acting as ``key`` (default: the admin key)."""
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx2.Client(base_url=self.base, headers=headers, timeout=30)

    def apply(self, catalog: str = "catalog.yaml") -> None:
        """One of the recipe's catalogs, applied as its page says: `meterline apply FILE`
        through the running server (``METERLINE_URL``, ``METERLINE_API_KEY``)."""
        done = subprocess.run(
            [METERLINE, "apply", catalog],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.folder,
            env={**os.environ, "METERLINE_URL": self.base, "METERLINE_API_KEY": self.key},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def run(
        self, *args: str, script: str = "recipe.py", command: list[str] | None = None, **env: str
    ) -> dict[str, Any]:
        """Run one of the recipe's programs (``python script``, or ``command``); it prints its
        numbers as JSON on its last line."""
        done = subprocess.run(
            command or [sys.executable, str(self.folder / script), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.folder,
            env={
                **os.environ,
                "METERLINE_URL": self.base,
                "METERLINE_API_KEY": self.key,
                "METERLINE_DATABASE_URL": self.database_url,
                **env,
            },
            check=False,
        )
        assert done.returncode == 0, f"{script}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return found

    def command(self, line: str, **env: str) -> subprocess.CompletedProcess[str]:
        """One command of a page's run block, as a reader types it at the repository's
        root (``meterline`` and ``python`` are this environment's), against this server
        and its database; it must succeed."""
        args = shlex.split(line)
        programs = {"meterline": METERLINE, "python": sys.executable}
        done = subprocess.run(
            [programs.get(args[0], args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={
                **os.environ,
                "METERLINE_URL": self.base,
                "METERLINE_API_KEY": self.key,
                "METERLINE_DATABASE_URL": self.database_url,
                **env,
            },
            check=False,
        )
        assert done.returncode == 0, f"{line}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done


def run_block(marker: str, page: str | None = None) -> list[str]:
    """The commands of the ``<!-- recipe-NAME -->`` block of docs/recipes/NAME.md (the
    page's "Run it"; another of its blocks: ``page`` names the page), comments left out."""
    name = page or marker.removeprefix("recipe-")
    path = ROOT / "docs" / "recipes" / f"{name}.md"
    lines = path.read_text().splitlines()
    start = lines.index(f"<!-- {marker} -->") + 2
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    return [line.split("  #")[0].strip() for line in lines[start:end] if line.strip()]


def build_js(kind: str, source: Path, out: Path | None = None) -> Path:
    """A recipe's JavaScript built against clients/js's source with its vite
    (clients/js/scripts/build-app.mjs): ``page`` (a folder with index.html) into the folder
    ``out``, or ``node`` (a program) into ``out``/NAME.mjs. Installs clients/js's locked
    dependencies first when they are missing."""
    if not (JS / "node_modules" / "vite").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(JS), "--no-audit", "--no-fund", "--silent"],
            check=True,
            timeout=600,
        )
    done = subprocess.run(
        ["node", str(JS / "scripts" / "build-app.mjs"), kind, str(source)]
        + ([str(out)] if out else []),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if kind == "node" and out:
        return out / f"{source.stem}.mjs"
    return out or source
