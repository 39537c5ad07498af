"""One real `meterline serve` per recipe module, on a fresh SQLite database (a module that
overrides ``recipe_backend`` with ``params=BACKENDS`` runs on PostgreSQL too)."""

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
def recipe_backend() -> str:
    """The database the recipe's server runs on: ``sqlite`` (a module overrides it)."""
    return "sqlite"


@pytest.fixture(scope="module")
def recipe_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    server_env: dict[str, str],
    recipe_backend: str,
) -> Iterator[Recipe]:
    """``meterline serve`` on a fresh database for the module's recipe (its ``RECIPE``),
    with a known admin key."""
    name: str = request.module.RECIPE
    extra = server_env
    key = "ml_" + secrets.token_urlsafe(32)
    if recipe_backend == "postgres":
        database_url: str = request.getfixturevalue("module_postgres_url")
    else:
        database_url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'meterline.db'}"
    env = {"METERLINE_BOOTSTRAP_KEY": key, "METERLINE_LOG_LEVEL": "warning", **extra}
    with serving("--database-url", database_url, env=env) as server:
        yield Recipe(name, server.base, key, database_url, env)
