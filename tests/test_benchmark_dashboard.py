"""`python benchmarks/dashboard.py` (the README's command) runs and prints a time for
every page: its demo half as it is, its large half on a small workspace."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "dashboard.py"
TIMED = re.compile(r"^\s+(/\S*).*?([\d.]+) ms\s+([\d.]+) ms$", re.M)

pytestmark = pytest.mark.e2e


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_demo_pages_are_timed() -> None:
    printed = _run("--demo-only", "--runs", "3")
    timed = {path for path, _, _ in TIMED.findall(printed)}
    assert {
        "/healthz",
        "/dashboard",
        "/dashboard/customers/org_acme",
        "/dashboard/revenue",
        "/dashboard/stripe",
    } <= timed
    assert "revenue snapshot: as of" in printed


def test_the_large_workspace_is_built_cached_and_timed(tmp_path: Path) -> None:
    args = ("--large-only", "--customers", "20", "--events", "2000", "--runs", "2")
    cache = ("--cache", str(tmp_path / "bench.db"))
    first = _run(*args, *cache)
    assert "building" in first
    assert "/dashboard/meters/api_call" in {p for p, _, _ in TIMED.findall(first)}
    again = _run(*args, *cache)
    assert "reusing" in again
