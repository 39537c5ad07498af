"""The light client against a real server, with nothing of the server installed."""

from __future__ import annotations

import asyncio
import http.server
import importlib.metadata
import importlib.util
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

import meterline_client
from meterline_client import Client


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def total(admin: Client, meter: str, customer: str) -> Decimal:
    rows = admin.get(f"/v1/meters/{meter}/usage", customer=customer)["data"]
    return sum((Decimal(r["value"]) for r in rows), Decimal(0))


def test_nothing_of_the_server_is_installed() -> None:
    for server_module in ("meterline", "sqlalchemy", "fastapi", "uvicorn", "psycopg"):
        assert importlib.util.find_spec(server_module) is None, server_module
    required = importlib.metadata.requires("meterline-client") or []
    assert [r for r in required if "extra ==" not in r] == ["httpx>=0.27"]


def test_track_sends_batches_and_consume_stops_at_the_limit(admin: Client) -> None:
    meter, customer = unique("scan"), unique("org")
    admin.create_meter(key=meter, event_type=meter, aggregation="count")
    admin.create_plan(
        key=meter,
        name="P",
        currency="USD",
        features={meter: {"limits": [{"window": "day", "max": "25", "enforcement": "hard"}]}},
    )
    admin.create_customer(external_id=customer)
    admin.subscribe(customer=customer, plan=meter)
    with Client(api_key=admin._api_key, base_url=admin.base_url, batch_size=7) as tracker:
        ids = {tracker.track(meter, customer) for _ in range(20)}
        assert tracker.flush(timeout=20)
    assert len(ids) == 20
    assert total(admin, meter, customer) == 20
    for _ in range(5):
        assert admin.consume(customer, meter).allowed
    with pytest.raises(meterline_client.LimitExceeded) as refused:
        admin.consume(customer, meter)
    assert refused.value.error_code == "limit_exceeded"
    assert refused.value.result.limits[0]["remaining"] == "0"
    assert isinstance(refused.value, meterline_client.MeterlineError)
    assert total(admin, meter, customer) == 25


def test_close_sends_the_buffer_and_stops_without_waiting_out_the_flush_interval(
    admin: Client,
) -> None:
    meter, customer = unique("scan"), unique("org")
    admin.create_meter(key=meter, event_type=meter, aggregation="count")
    tracker = Client(api_key=admin._api_key, base_url=admin.base_url, flush_interval=3600)
    for _ in range(3):
        tracker.track(meter, customer)
    closing = threading.Thread(target=tracker.close)
    closing.start()
    # The sender waits up to flush_interval for more events; close wakes it (before, a
    # script's exit waited out that interval: here an hour).
    closing.join(timeout=60)
    assert not closing.is_alive()
    assert tracker._sender is not None
    assert not tracker._sender.is_alive()
    assert total(admin, meter, customer) == 3
    assert tracker.rejected == []
    tracker.close()  # again: nothing waits
    assert tracker._queue.unfinished_tasks == 0


def test_negative_quantities_are_refused_before_anything_is_sent() -> None:
    nowhere = Client(api_key="ml_x", base_url="http://127.0.0.1:9", max_retries=0)
    attempts: list[Any] = [
        lambda: nowhere.track("x", "c", -1),
        lambda: nowhere.track("x", "c", "-0.5"),
        lambda: nowhere.track("x", "c", "lots"),
        lambda: nowhere.track("x", "c", float("nan")),
        lambda: nowhere.consume("c", "x", Decimal("-3")),
        lambda: nowhere.check("c", "x", -1),
        lambda: nowhere.reserve("c", "x", -10),
        lambda: nowhere.settle("r1", -1),
    ]
    for attempt in attempts:
        with pytest.raises(meterline_client.InvalidQuantity) as refused:
            attempt()  # not ConnectionFailed: nothing went out
        assert refused.value.error_code == "invalid_quantity"
        assert isinstance(refused.value, ValueError)
    assert nowhere._queue.qsize() == 0
    nowhere.close()


def test_decorator_records_through_the_meters_event_type_with_an_ingest_key(
    admin: Client, ingest_key: str
) -> None:
    feature, customer = unique("summary"), unique("org")
    admin.create_meter(
        key=feature, event_type="llm_call", aggregation="sum", value_property="usage.tokens"
    )
    backend = Client(api_key=ingest_key, base_url=admin.base_url, flush_interval=0.05)

    @backend.track_usage(feature, customer=customer, quantity=lambda text, result: len(result))
    def summarize(text: str) -> str:
        return text[:10]

    @backend.track_usage(feature, customer=customer, quantity=lambda n: n)
    async def summarize_async(n: int) -> int:  # the sync Client decorates async def too
        await asyncio.sleep(0)
        return n

    assert summarize("a long text to summarize") == "a long tex"
    assert asyncio.run(summarize_async(32)) == 32
    assert backend.flush(timeout=20)
    backend.close()
    assert backend.rejected == []
    assert total(admin, feature, customer) == 42
    events = admin.get("/v1/events", customer=customer)["data"]
    assert {e["type"] for e in events} == {"llm_call"}
    assert sorted(e["properties"]["usage"]["tokens"] for e in events) == [10, 32]


def test_a_feature_without_a_meter_is_surfaced_not_zero(
    admin: Client, ingest_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Client(api_key=ingest_key, base_url=admin.base_url)
    missing = unique("nometer")

    @backend.track_usage(missing, customer="org_a")
    def work() -> str:
        return "done"

    with caplog.at_level(logging.ERROR, logger="meterline.sdk"):
        assert work() == "done"
        assert work() == "done"  # asked once, remembered
    assert [r["code"] for r in backend.rejected] == ["not_counted", "not_counted"]
    assert missing in backend.rejected[0]["message"]
    assert any(missing in record.getMessage() for record in caplog.records)
    with pytest.raises(meterline_client.NotCounted):
        backend.track_feature(missing, "org_a")
    backend.close()


def test_a_meters_filter_is_honoured_or_surfaced(admin: Client) -> None:
    feature, customer = unique("doc"), unique("org")
    admin.create_meter(
        key=feature,
        event_type="document",
        aggregation="count",
        filter={"kind": ["receipt", "invoice"]},
    )
    client = Client(api_key=admin._api_key, base_url=admin.base_url, flush_interval=0.05)

    @client.track_usage(feature, customer=customer, properties=lambda kind: {"kind": kind})
    def scan(kind: str) -> str:
        return kind

    scan("receipt")
    scan("photo")  # the meter would not count it: surfaced, not sent as a silent zero
    scan("invoice")
    assert client.flush(timeout=20)
    client.close()
    assert [r["code"] for r in client.rejected] == ["not_counted"]
    assert total(admin, feature, customer) == 2


def test_the_async_client_decorates_coroutines_and_refuses_plain_functions(
    admin: Client,
) -> None:
    feature, customer = unique("job"), unique("org")
    admin.create_meter(key=feature, event_type="job_run", aggregation="count")

    async def run() -> None:
        async with meterline_client.AsyncClient(
            api_key=admin._api_key, base_url=admin.base_url
        ) as client:

            @client.track_usage(feature, customer=customer)
            async def job() -> int:
                return 1

            assert await job() == 1
            assert await job() == 1
            with pytest.raises(TypeError):
                client.track_usage(feature, customer=customer)(lambda: None)
            with pytest.raises(meterline_client.InvalidQuantity):
                await client.track("job_run", customer, -2)

    asyncio.run(run())
    assert total(admin, feature, customer) == 2


class _Storm(http.server.ThreadingHTTPServer):
    """Answers the first ``refusals`` requests 429 with ``Retry-After``, then forwards
    to the real server; records when each request came."""

    def __init__(self, upstream: str, refusals: int, retry_after: float) -> None:
        self.upstream, self.refusals, self.retry_after = upstream, refusals, retry_after
        self.seen: list[tuple[float, int]] = []
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(http.server.BaseHTTPRequestHandler):
    server: _Storm

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        storm = self.server
        if len(storm.seen) < storm.refusals:
            storm.seen.append((time.monotonic(), 429))
            self.send_response(429)
            self.send_header("Retry-After", str(storm.retry_after))
            self.send_header("content-length", "0")
            self.end_headers()
            return
        storm.seen.append((time.monotonic(), 200))
        upstream = httpx.request(
            self.command,
            storm.upstream + self.path,
            content=body,
            headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
        )
        self.send_response(upstream.status_code)
        self.send_header("content-type", upstream.headers.get("content-type", ""))
        self.send_header("content-length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    do_GET = do_POST = _answer


@pytest.fixture
def storm(server: str) -> Iterator[_Storm]:
    proxy = _Storm(server, refusals=2, retry_after=0.4)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_429_is_retried_after_what_retry_after_asks(admin: Client, storm: _Storm) -> None:
    meter, customer = unique("stormy"), unique("org")
    admin.create_meter(key=meter, event_type=meter, aggregation="count")
    port = storm.server_address[1]
    with Client(api_key=admin._api_key, base_url=f"http://127.0.0.1:{port}") as client:
        assert client.record(meter, customer)["accepted"] == 1
    statuses = [status for _, status in storm.seen]
    assert statuses == [429, 429, 200]
    gaps = [
        later - earlier
        for (earlier, _), (later, _) in zip(storm.seen, storm.seen[1:], strict=False)
    ]
    assert min(gaps) >= 0.4  # never sooner than the server asked
    assert total(admin, meter, customer) == 1


def test_events_no_meter_counts_are_accepted_and_surfaced_as_warnings(admin: Client) -> None:
    kind = unique("nobody_counts")
    with Client(api_key=admin._api_key, base_url=admin.base_url) as client:
        client.track(kind, "org_a")
        assert client.flush(timeout=20)
    assert client.rejected == []
    assert [w["code"] for w in client.warnings] == ["unmetered"]
    assert client.warnings[0]["event"]["type"] == kind
