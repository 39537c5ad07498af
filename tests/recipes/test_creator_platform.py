"""Recipe 5, meters, plan limits and the dashboard (docs/recipes/creator-platform.md),
against a real server: the 1,001st call on the free plan is refused; 12,000 calls on pro
bill 2.00 overage; the 80 % soft threshold arrives as a signed webhook; the numbers are
on the dashboard and the customer portal."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from recipes_support import Recipe, run_block

pytestmark = pytest.mark.e2e
RECIPE = "creator-platform"


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"METERLINE_WEBHOOKS_ALLOW_PRIVATE": "1", "METERLINE_DASHBOARD_SNAPSHOT_SECONDS": "0"}


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

    with httpx2.Client(base_url=recipe_server.base, timeout=30) as browser:
        form = browser.get("/dashboard/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed_in = browser.post(
            "/dashboard/login",
            data={"api_key": recipe_server.key, "csrf_token": token.group(1), "next": ""},
        )
        assert signed_in.status_code in (200, 303), signed_in.text[:500]
        page = browser.get("/dashboard/customers/studio_pro")
        assert page.status_code == 200
        assert "2.00" in page.text
        assert numbers["pro_total"] in page.text
        free = browser.get("/dashboard/customers/studio_free").text
        assert "1,000" in free or "1000" in free
    with recipe_server.http() as http:
        made = http.post("/v1/customers/studio_pro/tokens", json={"ttl_seconds": 600}).json()
        portal = httpx2.get(f"{recipe_server.base}/portal/{made['token']}")
    assert portal.status_code == 200
    assert "2.00" in portal.text
    assert numbers["pro_total"] in portal.text


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-creator-platform")
    assert "meterline apply examples/recipes/creator-platform/catalog.yaml" in commands
    assert "python examples/recipes/creator-platform/recipe.py" in commands
