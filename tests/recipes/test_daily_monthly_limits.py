"""Recipe 3, daily and monthly limits (docs/recipes/daily-monthly-limits.md): the
recipe's FastAPI app against a real server. The 21st generation of a day is refused
with 0 left today and 80 this month; after an admin reset it is allowed. Windows reset
at local midnight and on the 1st; old raw events are cleaned up; and when Meterline's
database cannot answer, the app refuses (fail closed)."""

from __future__ import annotations

import contextlib
import importlib.util
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

import meterline
from cli_support import run
from recipes_support import RECIPES, Recipe, run_block

pytestmark = pytest.mark.e2e
RECIPE = "daily-monthly-limits"
ZONE = "America/New_York"


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"METERLINE_SQLITE_BUSY_TIMEOUT_MS": "300"}  # a locked database answers soon


def recipe_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_app", RECIPES / RECIPE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _first_retention_sweep_done(recipe_server: Recipe) -> None:
    """The server's hourly retention sweep runs once at start; wait for it to have run
    (its next run an hour ahead), or it could take the old event before the command."""
    path = recipe_server.database_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute(
                "SELECT run_at FROM jobs WHERE key = 'maintenance:events.retention'"
            ).fetchone()
        if row is not None and datetime.fromisoformat(row[0]).replace(tzinfo=UTC) > (
            datetime.now(UTC) + timedelta(minutes=30)
        ):
            return
        time.sleep(0.1)
    raise AssertionError("the server's first retention sweep did not run")


@pytest.fixture(scope="module")
def app(recipe_server: Recipe) -> Iterator[TestClient]:
    _first_retention_sweep_done(recipe_server)  # so only `meterline events purge` deletes it
    with recipe_server.http() as http:  # a raw event from 33 days ago, before retention
        old = (datetime.now(UTC) - timedelta(days=33)).isoformat()
        event = {"id": "old-1", "type": "image_generation", "customer": "u_old", "timestamp": old}
        assert http.post("/v1/events", json=event).json()["accepted"] == 1
    recipe_server.apply()
    client = meterline.Client(api_key=recipe_server.key, base_url=recipe_server.base)
    for user, plan in (("u_ines", "creator"), ("u_studio", "studio")):
        client.create_customer(external_id=user, timezone=ZONE)
        client.subscribe(customer=user, plan=plan)
    with TestClient(recipe_app().create_app(client)) as test_client:
        yield test_client
    client.close()


def test_the_21st_generation_of_a_day_is_refused_then_allowed_after_a_reset(
    app: TestClient,
) -> None:
    who = {"x-user": "u_ines"}
    made = [app.post("/images", headers=who) for _ in range(20)]
    assert [r.status_code for r in made] == [200] * 20
    assert (made[-1].json()["left_today"], made[-1].json()["left_this_month"]) == ("0", "80")

    allowance = app.get("/images/allowance", headers=who).json()
    assert allowance == {
        "can_generate": False,
        "reason": "limit_exceeded",
        "remaining": {"day": "0", "month": "80"},
    }
    refused = app.post("/images", headers=who)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "limit_exceeded"
    remaining = {limit["window"]: limit["remaining"] for limit in refused.json()["limits"]}
    assert remaining == {"day": "0", "month": "80"}

    status = app.get("/status", headers=who).json()
    assert status["plan"] == "creator"
    assert status["message"] == "You have used all of this day's generations."
    day, month = status["limits"]
    now = datetime.now(ZoneInfo(ZONE))
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    first = (now.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    assert datetime.fromisoformat(day["resets_at"]) == midnight  # local midnight
    assert datetime.fromisoformat(month["resets_at"]) == first  # the 1st, local time
    assert (day["used"], month["used"]) == ("20", "20")

    assert app.post("/admin/users/u_ines/reset", params={"window": "day"}).status_code == 200
    again = app.post("/images", headers=who)
    assert again.status_code == 200
    assert (again.json()["left_today"], again.json()["left_this_month"]) == ("19", "79")
    assert app.get("/status", headers=who).json()["message"] == (
        "19 generations left today, 79 this month."
    )
    assert app.post("/admin/users/u_ines/reset", params={"window": "month"}).status_code == 200
    allowance = app.get("/images/allowance", headers=who).json()
    assert allowance["remaining"] == {"day": "19", "month": "100"}


def test_an_unlimited_plan_is_never_refused(app: TestClient) -> None:
    who = {"x-user": "u_studio"}
    assert [app.post("/images", headers=who).status_code for _ in range(25)] == [200] * 25
    status = app.get("/status", headers=who).json()
    assert status["message"] == "Unlimited generations on your plan."
    assert [limit["used"] for limit in status["limits"]] == ["25", "25"]


def test_old_raw_events_are_cleaned_up_and_totals_stay(
    recipe_server: Recipe, app: TestClient
) -> None:
    done = run("events", "purge", "--database-url", recipe_server.database_url)
    assert done.stdout.strip() == "Deleted 1 raw event(s) past retention.", done.stderr
    with recipe_server.http() as http:
        assert http.get("/v1/events", params={"customer": "u_old"}).json()["data"] == []


def test_when_the_database_cannot_answer_the_app_refuses(
    recipe_server: Recipe, app: TestClient
) -> None:
    path = recipe_server.database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the database cannot be written: no decision
    try:
        refused = app.post("/images", headers={"x-user": "u_studio"})
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert refused.status_code == 503
    assert refused.json()["code"] == "decision_unavailable"
    assert app.post("/images", headers={"x-user": "u_studio"}).status_code == 200
    with recipe_server.http() as http:
        used = http.get("/v1/meters/image_generation/usage", params={"customer": "u_studio"})
    assert [row["value"] for row in used.json()["data"]] == ["26"]  # the refused one: none


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-daily-monthly-limits")
    assert "meterline apply examples/recipes/daily-monthly-limits/catalog.yaml" in commands
    assert "cd examples/recipes/daily-monthly-limits && uvicorn app:app --port 8001" in commands
