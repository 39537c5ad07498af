"""Recipe 5, meters, plan limits and the dashboard (docs/recipes/creator-platform.md),
against a real server: the 1,001st call on the free plan is refused; 12,000 calls on pro
bill 2.00 overage; the 80 % soft threshold arrives as a signed webhook; the numbers are
on the dashboard and the customer portal. The JavaScript part: calls tracked from Node
with the JS SDK, and a React page (useUsageTracking, a customer token, CORS) in Chromium
whose click records one call and whose shown usage follows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import expect, sync_playwright

from cli_support import free_port
from recipes_support import Recipe, build_js, run_block

pytestmark = pytest.mark.e2e
RECIPE = "creator-platform"


@pytest.fixture(scope="module")
def page_origin() -> str:
    """Where the recipe's React page is served (the server's CORS allows it)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def server_env(page_origin: str) -> dict[str, str]:
    return {
        "METERLINE_WEBHOOKS_ALLOW_PRIVATE": "1",
        "METERLINE_DASHBOARD_SNAPSHOT_SECONDS": "0",
        "METERLINE_CORS_ORIGINS": page_origin,
    }


@contextmanager
def dashboard(recipe: Recipe) -> Iterator[httpx2.Client]:
    """A browser-like client signed in to the dashboard with the admin key."""
    with httpx2.Client(base_url=recipe.base, timeout=30) as browser:
        form = browser.get("/dashboard/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed_in = browser.post(
            "/dashboard/login",
            data={"api_key": recipe.key, "csrf_token": token.group(1), "next": ""},
        )
        assert signed_in.status_code in (200, 303), signed_in.text[:500]
        yield browser


def portal(recipe: Recipe, customer: str) -> httpx2.Response:
    """The customer portal, through a link made with a fresh customer token."""
    with recipe.http() as http:
        made = http.post(f"/v1/customers/{customer}/tokens", json={"ttl_seconds": 600}).json()
    return httpx2.get(f"{recipe.base}/portal/{made['token']}", timeout=30)


@pytest.fixture(scope="module")
def alerts() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    server.shutdown()
    server.server_close()


def test_free_caps_at_1000_and_pro_bills_2_00_overage(
    recipe_server: Recipe, alerts: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = alerts
    recipe_server.apply()

    numbers = recipe_server.run(ALERTS_URL=url)

    assert numbers["free_last_remaining"] == "0"  # the 1,000th call
    assert numbers["free_1001st"] == "limit_exceeded"
    assert numbers["pro_soft_allowed"] is True
    pro = numbers["pro"]
    assert pro["api_call"] == ["12000", "2000", "2.00"]  # 2,000 over, at 0.001
    assert pro["storage"][0] == "3500000000"
    assert pro["messages"][0] == "42"
    assert pro["unique_users"][0] == "2"
    assert pro["feature_time"][0] == "90"  # 5,400 seconds, in minutes
    assert Decimal(numbers["pro_total"]) == Decimal(numbers["pro_base_fee"]) + Decimal("2.00")

    deadline = time.monotonic() + 15  # evaluated 2 s after the batch, then delivered
    while not received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(received) == 1, received
    alert = received[0]
    assert alert["body"]["type"] == "usage.threshold_reached"
    assert alert["body"]["data"]["customer"] == "studio_pro"
    assert alert["headers"]["webhook-signature"].startswith("v1,")

    with dashboard(recipe_server) as browser:
        page = browser.get("/dashboard/customers/studio_pro")
        assert page.status_code == 200
        assert "2.00" in page.text
        assert numbers["pro_total"] in page.text
        free = browser.get("/dashboard/customers/studio_free").text
        assert "1,000" in free or "1000" in free
    shown = portal(recipe_server, "studio_pro")
    assert shown.status_code == 200
    assert "2.00" in shown.text
    assert numbers["pro_total"] in shown.text


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-creator-platform")
    assert "meterline apply examples/recipes/creator-platform/catalog.yaml" in commands
    assert "python examples/recipes/creator-platform/recipe.py" in commands
    js = run_block("recipe-creator-platform-js", page="creator-platform")
    assert "node examples/recipes/creator-platform/js/track.mjs" in js
    assert "npx vite build examples/recipes/creator-platform/js/page" in js
    assert "node examples/recipes/creator-platform/js/server.mjs" in js


def api_calls_used(recipe: Recipe, customer: str) -> str:
    """The customer's API calls this month, as the entitlements API answers."""
    with recipe.http() as http:
        answer = http.get(f"/v1/customers/{customer}/entitlements").json()
    (api_call,) = [f for f in answer["features"] if f["feature"] == "api_call"]
    used: str = api_call["limits"][0]["used"]
    return used


@contextmanager
def app_backend(program: Path, page: Path, origin: str, recipe: Recipe) -> Iterator[None]:
    """The platform's web server, js/server.mjs (built): the page, and a customer token
    for the signed-in creator made with the admin key."""
    env = {
        **os.environ,
        "METERLINE_URL": recipe.base,
        "METERLINE_API_KEY": recipe.key,
        "PAGE_DIR": str(page),
        "PORT": origin.rsplit(":", 1)[1],
        "CREATOR": "studio_web",
    }
    with subprocess.Popen(
        ["node", str(program)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # printed once it listens
            assert line.startswith("the creator page: "), line + process.stdout.read()
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_js_sdk_tracks_from_node_and_the_react_page_records_a_call(
    recipe_server: Recipe, page_origin: str, tmp_path: Path
) -> None:
    js = recipe_server.folder / "js"
    types = ThreadPoolExecutor(1)  # the page's TypeScript, strict, checked meanwhile
    checked = types.submit(build_js, "types", js / "page")
    track = build_js("node", js / "track.mjs", tmp_path / "track")
    server = build_js("node", js / "server.mjs", tmp_path / "server")
    page = build_js("page", js / "page", tmp_path / "page")
    recipe_server.apply()

    # Node: 40 calls tracked in batches, one consumed (the 41st), storage and messages.
    numbers = recipe_server.run(command=["node", str(track)], CREATOR="studio_web")
    assert numbers["remaining"] == "959"  # 1,000 on free, 41 used
    assert numbers["used"]["api_call"] == "41"
    assert numbers["used"]["storage"] == "250000000"
    assert numbers["used"]["messages"] == "7"
    assert api_calls_used(recipe_server, "studio_web") == "41"

    # The browser: a customer token, CORS for the page's origin, useUsageTracking's click.
    with (
        app_backend(server, page, page_origin, recipe_server),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-sync"],
        )
        try:
            tab = browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(f"{page_origin}/?meterline={recipe_server.base}&creator=studio_web")
            shown = tab.get_by_test_id("api-calls")
            expect(shown).to_have_text("41 of 1000 API calls this month, 959 left", timeout=15_000)
            tab.get_by_role("button", name="Publish a post").click()
            expect(shown).to_have_text("42 of 1000 API calls this month, 958 left", timeout=15_000)
            assert errors == []
        finally:
            browser.close()
    assert api_calls_used(recipe_server, "studio_web") == "42"

    with dashboard(recipe_server) as http:
        page_text = http.get("/dashboard/customers/studio_web").text
    shown_portal = portal(recipe_server, "studio_web").text
    for text in (page_text, shown_portal):  # 40 from Node, 1 consumed there, 1 clicked
        assert re.search(r'data-figure="used-api_call">42\b', text), text[:3000]
        assert re.search(r'data-figure="used-messages">7\b', text), text[:3000]
    checked.result()
    types.shutdown()
