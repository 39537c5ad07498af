"""One real `meterline serve` per recipe module, on a fresh SQLite database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from cli_support import serving
from recipes_support import Recipe


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """Settings of the recipe's server (a module overrides it)."""
    return {}


@pytest.fixture(scope="module")
def recipe_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    server_env: dict[str, str],
) -> Iterator[Recipe]:
    """``meterline serve`` on a fresh SQLite file for the module's recipe (its ``RECIPE``),
    with a known admin key."""
    name: str = request.module.RECIPE
    extra = server_env
    key = "ml_" + secrets.token_urlsafe(32)
    database_url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'meterline.db'}"
    env = {"METERLINE_BOOTSTRAP_KEY": key, "METERLINE_LOG_LEVEL": "warning", **extra}
    with serving("--database-url", database_url, env=env) as server:
        yield Recipe(name, server.base, key, database_url, env)
