"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a
real `meterline serve --demo`.

Signs in with the printed key, opens every page, and on each: no console error, no
failed request, no request to another host, every chart's canvas drawn with data,
no serious or critical axe-core violation; grants credits through the form and sees
the balance change; opens a portal link in a fresh browser; signs in with a read key
and finds no form. A PNG of each page goes to a temporary folder printed at the start.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from billing_sync.fake_stripe import FakeStripe
from cli_support import serving

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_FOLDER = Path(__file__).parents[1] / "browser"
AXE = AXE_FOLDER / "node_modules" / "axe-core" / "axe.min.js"

PAGES = [
    ("overview", "/dashboard", 1),
    ("overview-30d", "/dashboard?range=30d", 1),
    ("customers", "/dashboard/customers", 0),
    ("customer-acme", "/dashboard/customers/org_acme", 1),
    ("customer-alice", "/dashboard/customers/user_alice", 1),
    ("customer-solo", "/dashboard/customers/user_solo", 1),
    ("meters", "/dashboard/meters", 0),
    ("meter-api-call", "/dashboard/meters/api_call?range=7d&group_by=endpoint", 1),
    ("meter-tokens", "/dashboard/meters/llm_tokens", 1),
    ("plans", "/dashboard/plans", 0),
    ("plan-pro", "/dashboard/plans/pro?used.api_call=25000&n=5", 0),
    ("revenue", "/dashboard/revenue", 0),
    ("invoices", "/dashboard/invoices", 0),
    ("alerts", "/dashboard/alerts", 0),
    ("webhooks", "/dashboard/webhooks", 0),
    ("api-keys", "/dashboard/api-keys", 0),
    ("stripe", "/dashboard/stripe", 0),
]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():  # the test-only npm package, pinned by tests/browser's lockfile
        subprocess.run(
            ["npm", "ci", "--prefix", str(AXE_FOLDER), "--no-audit", "--no-fund", "--silent"],
            check=True,
        )
    return AXE.read_text()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="meterline-dashboard-shots-"))
    print(f"\nscreenshots of every page: {folder}")
    return folder


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    """The fake Stripe the demo server is pointed at (not connected until a test
    connects it)."""
    found = FakeStripe()
    yield found
    found.close()


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, fake_stripe: FakeStripe
) -> Iterator[tuple[str, str, str]]:
    """(base URL, admin key, what serve printed) of a real `meterline serve --demo`."""
    folder = tmp_path_factory.mktemp("demo")
    env = {
        "METERLINE_DATABASE_URL": f"sqlite:///{folder / 'demo.db'}",
        "METERLINE_LOG_LEVEL": "warning",
        "METERLINE_STRIPE_API_BASE": fake_stripe.api_base,
        "METERLINE_STRIPE_METER_EVENTS_BASE": fake_stripe.meter_events_base,
        "METERLINE_STRIPE_REQUESTS_PER_SECOND": "1000",
    }
    with serving("--demo", env=env, cwd=folder) as server:
        printed = server.output()
        key = re.search(r"Demo admin API key:\n\s+(ml_\S+)", printed)
        assert key is not None, printed
        yield server.base, key.group(1), printed


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), "install Chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class Watch:
    """Everything a page did wrong: console errors, failed requests, other hosts."""

    def __init__(self, page: Page, base: str) -> None:
        self.problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: (
                None
                if r.failure == "net::ERR_ABORTED"  # cancelled by the browser navigating on
                else self.problems.append(f"failed: {r.url} {r.failure}")
            ),
        )
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
            ),
        )
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(base) or r.url.startswith("data:")
                else self.problems.append(f"other host: {r.url}")
            ),
        )


def _context(chromium: Browser) -> BrowserContext:
    return chromium.new_context(viewport={"width": 1280, "height": 900})


def _sign_in(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=api_key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")


def _drawn_pixels(page: Page) -> list[int]:
    """Per chart: how many coloured pixels its canvas has (axes and grid are grey)."""
    found: list[int] = page.evaluate(
        """() => [...document.querySelectorAll('.chart canvas')].map((canvas) => {
            const context = canvas.getContext('2d');
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let coloured = 0;
            for (let i = 0; i < data.length; i += 4) {
                const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
                if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
            }
            return coloured;
        })"""
    )
    return found


def _axe(page: Page, source: str) -> list[dict[str, Any]]:
    page.evaluate(source + "\n;0")
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_every_page_in_a_real_browser(
    demo: tuple[str, str, str], chromium: Browser, axe_source: str, shots: Path
) -> None:
    base, key, printed = demo
    assert f"Dashboard: {base}/dashboard" in printed
    context = _context(chromium)
    page = context.new_page()
    watch = Watch(page, base)
    _sign_in(page, base, key)
    for name, path, charts in PAGES:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        assert watch.problems == [], (name, watch.problems)
        drawn = _drawn_pixels(page)
        assert len(drawn) == charts, (name, drawn)
        assert all(n > 50 for n in drawn), (name, drawn)  # a line or bars, not empty axes
        serious = _axe(page, axe_source)
        assert serious == [], (name, [(v["id"], v["help"], v["nodes"][:2]) for v in serious])
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .info")
    page.screenshot(path=str(shots / "docs.png"))
    assert watch.problems == [], watch.problems
    context.close()


def test_htmx_controls_swap_in_place(demo: tuple[str, str, str], chromium: Browser) -> None:
    base, key, _ = demo
    context = _context(chromium)
    page = context.new_page()
    watch = Watch(page, base)
    _sign_in(page, base, key)
    page.goto(f"{base}/dashboard/customers")
    page.wait_for_load_state("networkidle")
    page.fill("input[name=q]", "glob")
    # A function, not an expression: an expression is eval'd, which the CSP forbids.
    page.wait_for_function("() => document.querySelectorAll('#customer-table tr').length === 2")
    assert "org_globex" in page.inner_text("#customer-table")
    page.goto(f"{base}/dashboard/meters/api_call")
    page.select_option("select[name=window]", "day")
    page.wait_for_url(re.compile(r"window=day"))
    page.wait_for_function("() => document.querySelector('#meter-usage canvas') !== null")
    assert all(n > 50 for n in _drawn_pixels(page))
    assert watch.problems == [], watch.problems
    context.close()


def test_grant_credits_and_open_a_portal_link(
    demo: tuple[str, str, str], chromium: Browser, axe_source: str, shots: Path
) -> None:
    base, key, _ = demo
    context = _context(chromium)
    page = context.new_page()
    watch = Watch(page, base)
    _sign_in(page, base, key)
    page.goto(f"{base}/dashboard/customers/org_acme")
    before = Decimal(page.inner_text('[data-figure="balance"]'))
    grant = page.locator("form[aria-label='Grant credits']")
    grant.locator("input[name=amount]").fill("123.5")
    grant.locator("input[name=description]").fill("From the browser test")
    grant.locator("button[type=submit]").click()
    page.wait_for_selector("text=Credits granted.")
    assert Decimal(page.inner_text('[data-figure="balance"]')) == before + Decimal("123.5")
    api = httpx2.get(
        f"{base}/v1/customers/org_acme/credits", headers={"Authorization": f"Bearer {key}"}
    )
    assert Decimal(api.json()["balance"]) == before + Decimal("123.5")

    page.locator("form[action$='/portal-link'] button[type=submit]").click()
    link = page.get_attribute("[data-portal-link]", "href")
    assert link is not None
    assert "/portal/mlct_" in link
    assert watch.problems == [], watch.problems
    context.close()

    stranger = _context(chromium)  # another browser: no session, only the link
    portal = stranger.new_page()
    portal_watch = Watch(portal, base)
    portal.goto(link)
    portal.wait_for_load_state("networkidle")
    portal.screenshot(path=str(shots / "portal.png"), full_page=True)
    text = portal.inner_text("body")
    assert "Acme GmbH" in text
    for other in ("Globex", "Initech", "Sam Solo", "org_globex"):
        assert other not in text
    assert portal.locator("form").count() == 0
    assert _axe(portal, axe_source) == []
    assert portal_watch.problems == [], portal_watch.problems
    assert portal.goto(f"{base}/dashboard").url.startswith(f"{base}/dashboard/login")
    stranger.close()


def test_a_read_key_sees_no_forms(demo: tuple[str, str, str], chromium: Browser) -> None:
    base, key, _ = demo
    made = httpx2.post(
        f"{base}/v1/api-keys",
        json={"name": "browser read", "scopes": ["read"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    context = _context(chromium)
    page = context.new_page()
    watch = Watch(page, base)
    _sign_in(page, base, made.json()["key"])
    for name, path, _ in PAGES:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("form").count() == 0, name
        assert "read-only session" in page.inner_text("header")
    assert watch.problems == [], watch.problems
    context.close()


@pytest.fixture
def admin_api(demo: tuple[str, str, str]) -> Iterator[httpx2.Client]:
    base, key, _ = demo
    with httpx2.Client(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client


def _until(check: Any, what: str, seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def test_stripe_page_retries_and_reconciles_against_the_fake_stripe(
    demo: tuple[str, str, str],
    chromium: Browser,
    axe_source: str,
    shots: Path,
    fake_stripe: FakeStripe,
    admin_api: httpx2.Client,
) -> None:
    base, key, _ = demo
    api = admin_api
    for name in ("api_call", "ocr_scan", "llm_tokens", "ai_insight", "compute_hours"):
        fake_stripe.meter(name)
    for customer in api.get("/v1/customers", params={"limit": 100}).json()["data"]:
        if customer["stripe_customer_id"]:  # the demo's ids, made at this Stripe
            mapped = {"stripe_customer_id": fake_stripe.customer(customer["external_id"])}
            assert api.patch(f"/v1/customers/{customer['external_id']}", json=mapped).is_success
    body = {"secret_key": fake_stripe.secret_key, "mode": "meter_events"}
    assert api.put("/v1/integrations/stripe", json=body).status_code == 200
    fake_stripe.fail("/v2/billing/meter_event_stream", status=400)  # one batch refused

    def settled() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get("/v1/integrations/stripe").json()
        return status if status["pending"] == 0 and status["last_reported_at"] else None

    context = _context(chromium)
    page = context.new_page()
    watch = Watch(page, base)
    _sign_in(page, base, key)
    page.goto(f"{base}/dashboard/stripe")
    page.locator("form[aria-label='Sync now'] button").click()
    page.wait_for_selector("text=Sync queued (meter_events).")
    status = _until(settled, "every report sent or failed")
    assert status["failed"] > 0
    page.goto(f"{base}/dashboard/stripe")
    page.wait_for_load_state("networkidle")
    assert page.inner_text('[data-figure="failed"]') == str(status["failed"])
    assert page.inner_text('[data-figure="status"]') == "connected"
    page.screenshot(path=str(shots / "stripe-failed.png"), full_page=True)
    assert _axe(page, axe_source) == []

    first = page.locator("tr[data-report]").first.get_attribute("data-report")
    assert first is not None
    page.locator(f"form[aria-label='Retry {first}'] button").click()
    page.wait_for_selector(f"text=Report {first} is pending.")

    def retried_and_settled() -> bool:
        failed = api.get(
            "/v1/integrations/stripe/reports", params={"status": "failed", "limit": 1000}
        ).json()["data"]
        return first not in {r["id"] for r in failed} and settled() is not None

    _until(retried_and_settled, "the retried report sent")

    # Stripe loses a sent event: the page's reconciliation finds it, and repairs it.
    sent = api.get("/v1/integrations/stripe/reports", params={"status": "sent"}).json()["data"]
    lost = next(r for r in sent if r["kind"] == "meter_event")
    fake_stripe.lose(lost["identifier"])
    hour = datetime.fromisoformat(lost["hour_start"])
    span = {"from": hour.isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    page.goto(f"{base}/dashboard/stripe")
    form = page.locator("form[aria-label='Reconcile with Stripe']")
    for name, value in span.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-reconciled]")
    row = f"{lost['customer']}-{lost['meter']}"
    shown = int(page.inner_text(f'[data-figure="stripe-{row}"]'))
    reported = int(page.inner_text(f'[data-figure="reported-{row}"]'))
    assert reported - shown == lost["value"]
    page.screenshot(path=str(shots / "stripe-reconciled.png"), full_page=True)
    assert _axe(page, axe_source) == []
    form = page.locator("form[aria-label='Reconcile with Stripe']")
    form.locator("input[name=repair]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=queued to close them")
    _until(settled, "the repair sent")
    form = page.locator("form[aria-label='Reconcile with Stripe']")
    form.locator("input[name=repair]").uncheck()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-reconciled]")
    assert page.locator(f'[data-figure="stripe-{row}"]').count() == 0
    assert watch.problems == [], watch.problems
    context.close()
