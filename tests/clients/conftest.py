"""A `meterline serve --demo` for the clients' examples, as a new user runs them (one per
session: the examples only add usage to it)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import serving
from demo_support import Demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    key = "ml_" + secrets.token_urlsafe(32)
    database = Path(tmp_path_factory.mktemp("demo")) / "demo.db"
    with serving(
        "--demo",
        "--database-url",
        f"sqlite:///{database}",
        env={"METERLINE_BOOTSTRAP_KEY": key, "METERLINE_LOG_LEVEL": "warning"},
    ) as server:
        yield Demo(server.base, key)
