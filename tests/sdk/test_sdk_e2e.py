"""The Python SDK against a real `meterline serve`: batching, a server restart in the
middle of a stream (every event counted once), a full buffer, the decorator on sync and
async functions, the FastAPI dependency, and library mode answering as the API does."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

import meterline
from cli_support import METERLINE, free_port

pytestmark = pytest.mark.e2e
KEY = "ml_" + secrets.token_urlsafe(32)


def start(database_url: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [METERLINE, "serve", "--port", str(port), "--database-url", database_url],
        env={**os.environ, "METERLINE_BOOTSTRAP_KEY": KEY, "METERLINE_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx2.TransportError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError("meterline serve did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="meterline-sdk-"))
    port = free_port()
    process = start(f"sqlite:///{folder / 'sdk.db'}", port)
    yield f"http://127.0.0.1:{port}"
    stop(process)


def admin(base: str) -> meterline.Client:
    return meterline.Client(api_key=KEY, base_url=base)


def total(client: meterline.Client, meter: str, customer: str) -> Decimal:
    rows = client.get(f"/v1/meters/{meter}/usage", customer=customer)["data"]
    return sum((Decimal(r["value"]) for r in rows), Decimal(0))


def requests_to_events(base: str) -> float:
    text = httpx2.get(f"{base}/metrics").text
    return sum(
        float(m.group(1))
        for m in re.finditer(
            r'meterline_http_requests_total\{[^}]*method="POST"[^}]*'
            r'route="/v1/events"[^}]*\} (\S+)',
            text,
        )
    )


def test_many_tracks_become_few_requests(server: str) -> None:
    with admin(server) as client:
        client.create_meter(key="batched", event_type="batched", aggregation="count")
        before = requests_to_events(server)
        tracker = meterline.Client(api_key=KEY, base_url=server, batch_size=250, flush_interval=0.2)
        ids = {tracker.track("batched", "acme") for _ in range(1000)}
        assert tracker.flush(timeout=30)
        tracker.close()
        assert len(ids) == 1000
        assert total(client, "batched", "acme") == 1000
        assert requests_to_events(server) - before <= 12  # 1,000 events, a few batches


def test_a_restart_mid_stream_counts_every_event_once(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    base = f"http://127.0.0.1:{port}"
    process = start(url, port)
    with admin(base) as client:
        client.create_meter(key="streamed", event_type="streamed", aggregation="count")
    tracker = meterline.Client(
        api_key=KEY, base_url=base, batch_size=50, flush_interval=0.05, buffer_size=100_000
    )
    for _ in range(300):
        tracker.track("streamed", "acme")
    stop(process)  # mid-stream: batches in flight fail and are retried
    for _ in range(300):
        tracker.track("streamed", "acme")
    time.sleep(0.5)
    process = start(url, port)
    try:
        assert tracker.flush(timeout=60)
        tracker.close()
        assert tracker.rejected == []
        with admin(base) as client:
            assert total(client, "streamed", "acme") == 600
    finally:
        stop(process)


def test_a_full_buffer_raises_or_blocks_never_drops() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: nothing can be sent
    raising = meterline.Client(api_key=KEY, base_url=nowhere, buffer_size=3, on_overflow="raise")
    with pytest.raises(meterline.BufferFull):
        for _ in range(10):
            raising.track("x", "acme")
    blocking = meterline.Client(api_key=KEY, base_url=nowhere, buffer_size=3)
    done = threading.Event()

    def fill() -> None:
        for _ in range(10):
            blocking.track("x", "acme")
        done.set()

    threading.Thread(target=fill, daemon=True).start()
    assert not done.wait(1.0)  # blocked, waiting for room
    assert blocking._queue.qsize() == 3
    for client in (raising, blocking):
        client._closing.set()


def test_decorator_records_only_successful_calls(server: str) -> None:
    with admin(server) as client:
        client.create_meter(key="report", event_type="report", aggregation="sum")
        tracker = meterline.Client(api_key=KEY, base_url=server, flush_interval=0.1)

        @tracker.track_usage(
            "report", customer=lambda org, pages: org, quantity=lambda org, pages: pages
        )
        def build(org: str, pages: int) -> int:
            if pages < 0:
                raise ValueError("negative")
            return pages

        assert build("acme", 3) == 3
        with pytest.raises(ValueError, match="negative"):
            build("acme", -1)
        build("globex", 2)

        async_client = meterline.AsyncClient(api_key=KEY, base_url=server, flush_interval=0.1)

        @async_client.track_usage("report", customer="acme", quantity=lambda result: result)
        async def summarize(pages: int) -> int:
            if pages == 0:
                raise RuntimeError("empty")
            return pages

        async def run() -> None:
            assert await summarize(4) == 4
            with pytest.raises(RuntimeError):
                await summarize(0)
            await async_client.aclose()

        asyncio.run(run())
        assert tracker.flush(timeout=10)
        tracker.close()
        assert total(client, "report", "acme") == 7
        assert total(client, "report", "globex") == 2


def test_fastapi_dependency_answers_429_and_402(server: str) -> None:
    from examples.fastapi_app import create_app

    with admin(server) as client:
        client.create_meter(key="ocr_scan", event_type="ocr_scan", aggregation="count")
        client.create_meter(key="custom_report", event_type="custom_report", aggregation="count")
        client.create_plan(
            key="metered",
            name="Metered",
            currency="USD",
            features={
                "ocr_scan": {"limits": [{"window": "day", "max": "2"}]},
                "custom_report": {},
            },
        )
        client.create_plan(
            key="credited",
            name="Credited",
            currency="USD",
            features={"ocr_scan": {"credit_cost": {"per_unit": "5"}}},
        )
        for org, plan in (("limited_org", "metered"), ("broke_org", "credited")):
            client.create_customer(external_id=org)
            client.subscribe(customer=org, plan=plan)
        sdk = meterline.Client(api_key=KEY, base_url=server, flush_interval=0.1)
        app = TestClient(create_app(sdk))
        answers = [
            app.post("/scan", headers={"x-org": "limited_org"}).status_code for _ in range(3)
        ]
        assert answers == [200, 200, 429]
        refused = app.post("/scan", headers={"x-org": "limited_org"})
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "limit_exceeded"
        assert refused.json()["limits"][0]["remaining"] == "0"
        broke = app.post("/scan", headers={"x-org": "broke_org"})
        assert (broke.status_code, broke.json()["code"]) == (402, "insufficient_credits")
        assert app.post("/reports?pages=2", headers={"x-org": "limited_org"}).status_code == 200
        assert app.post("/reports?pages=0", headers={"x-org": "limited_org"}).status_code == 422
        assert sdk.flush(timeout=10)
        sdk.close()
        assert total(client, "custom_report", "limited_org") == 1  # the failed one: none
        assert total(client, "ocr_scan", "limited_org") == 2


def test_fastapi_dependency_fails_closed_when_meterline_cannot_decide() -> None:
    from examples.fastapi_app import create_app

    nowhere = meterline.Client(api_key=KEY, base_url="http://127.0.0.1:9", max_retries=0)
    app = TestClient(create_app(nowhere))
    refused = app.post("/scan", headers={"x-org": "any_org"})
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "decision_unavailable"
    nowhere.close()


def test_library_mode_answers_as_the_api_does(server: str, tmp_path: Path) -> None:
    plan: dict[str, Any] = {
        "key": "same",
        "name": "Same",
        "currency": "USD",
        "features": {
            "q": {"limits": [{"window": "day", "max": "3"}, {"window": "month", "max": "10"}]}
        },
    }
    library = meterline.Meterline(f"sqlite:///{tmp_path / 'library.db'}")
    library.create_meter(key="q", event_type="q", aggregation="count")
    library.create_plan(**plan)
    library.create_customer(external_id="parity")
    library.subscribe(customer="parity", plan="same")
    with admin(server) as client:
        client.create_meter(key="q", event_type="q", aggregation="count")
        client.create_plan(**plan)
        client.create_customer(external_id="parity")
        client.subscribe(customer="parity", plan="same")
        over_http, in_process = [], []
        for i in range(5):
            http = client.check("parity", "q", consume=True, id=f"p{i}")
            local = library.check(customer="parity", feature="q", consume=True, id=f"p{i}")
            over_http.append(
                (http.allowed, http.reason, [(x["window"], x["used"]) for x in http.limits])
            )
            in_process.append(
                (local.allowed, local.reason, [(x.window, str(x.used)) for x in local.limits])
            )
        assert over_http == in_process
        assert [allowed for allowed, _, _ in over_http] == [True, True, True, False, False]
        with pytest.raises(meterline.LimitExceeded):
            client.consume("parity", "q")
    library.close()


def test_a_forked_child_sends_its_own_events(server: str) -> None:
    with admin(server) as client:
        client.create_meter(key="forked", event_type="forked", aggregation="count")
        shared = meterline.Client(api_key=KEY, base_url=server, flush_interval=0.1)
        shared.track("forked", "parent")  # the parent's sender is running
        pid = os.fork()
        if pid == 0:  # the child: a buffer and a sender of its own
            code = 1
            try:
                for _ in range(5):
                    shared.track("forked", "child")
                code = 0 if shared.flush(timeout=20) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert shared.flush(timeout=10)
        shared.close()
        assert total(client, "forked", "child") == 5
        assert total(client, "forked", "parent") == 1


def test_a_customer_token_from_the_server_reaches_its_customer_only(server: str) -> None:
    with admin(server) as client:
        client.create_meter(key="tok", event_type="tok", aggregation="count")
        client.create_plan(key="tokplan", name="T", currency="USD", features={"tok": {}})
        for org in ("tok_a", "tok_b"):
            client.create_customer(external_id=org)
            client.subscribe(customer=org, plan="tokplan")
        token = client.post("/v1/customers/tok_a/tokens", {"ttl_seconds": 600})["token"]
    browser = meterline.Client(api_key=token, base_url=server)
    assert browser.entitlements("tok_a")["plan"] == "tokplan"
    assert browser.consume("tok_a", "tok").allowed is True
    with pytest.raises(meterline.AuthenticationError) as refused:
        browser.usage("tok_b")
    assert refused.value.error_code == "insufficient_scope"
    with pytest.raises(meterline.AuthenticationError):
        browser.get("/v1/customers")
    browser.close()
