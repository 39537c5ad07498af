"""Real processes: `meterline stripe sync` and `meterline stripe reconcile [--repair]`
against the fake Stripe, and a `meterline serve` killed with SIGKILL in the middle of a
report, then restarted: Stripe counts every unit exactly once (the fake counts
identifiers)."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx2
import pytest
from fake_stripe import FakeStripe
from sqlalchemy import select
from stripe_support import connect, mapped_customer, mapped_meter, reports, send

from cli_support import run, serving
from meterline.billing_sync.models import StripeReport
from meterline.db import Database
from support import Api

pytestmark = pytest.mark.e2e


def _env(fake: FakeStripe) -> dict[str, str]:
    return {
        "METERLINE_STRIPE_API_BASE": fake.api_base,
        "METERLINE_STRIPE_METER_EVENTS_BASE": fake.meter_events_base,
        "METERLINE_STRIPE_REQUESTS_PER_SECOND": "1000",
    }


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def test_cli_sync_and_reconcile_with_repair(api: Api, fake: FakeStripe, database_url: str) -> None:
    now = datetime.now(UTC)
    mapped_meter(api, fake, "tokens")
    cus = mapped_customer(api, fake, "acme")
    connect(api, fake)
    send(
        api,
        [
            {
                "id": f"t{h}",
                "type": "tokens",
                "customer": "acme",
                "quantity": "2.5",
                "timestamp": (_hour(now) - timedelta(hours=h, minutes=-10)).isoformat(),
            }
            for h in range(2, 6)
        ],
    )
    done = run("stripe", "sync", "--database-url", database_url, env=_env(fake))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Stripe reports of 'alpha': 4 sent, 0 pending, 0 failed."
    assert fake.total(cus, "tokens") == 10
    window = [
        "--from",
        (_hour(now) - timedelta(hours=6)).isoformat(),
        "--to",
        _hour(now).isoformat(),
        "--database-url",
        database_url,
    ]
    lost = reports(api)[0]
    fake.lose(lost["identifier"])
    found = run("stripe", "reconcile", *window, env=_env(fake))
    assert found.returncode == 1
    assert found.stdout.splitlines()[0].split("\t") == [
        "acme",
        "tokens",
        "meterline 10",
        "reported 10",
        f"stripe {10 - lost['value']}",
        "pending 0",
    ]
    assert "1 difference(s) with Stripe." in found.stderr
    repaired = run("stripe", "reconcile", *window, "--repair", env=_env(fake))
    assert repaired.returncode == 0, repaired.stderr
    assert "Repaired: 1 report(s) sent" in repaired.stdout
    assert fake.total(cus, "tokens") == 10
    clean = run("stripe", "reconcile", *window, env=_env(fake))
    assert (clean.returncode, clean.stdout.strip()) == (
        0,
        "Stripe matches Meterline for 1 customer and meter pair(s).",
    )
    bad = run(
        "stripe", "reconcile", "--from", "yesterday", "--to", "now", "--database-url", database_url
    )
    assert (bad.returncode, bad.stderr.strip()) == (
        1,
        "error: --from: not an RFC 3339 timestamp: Invalid isoformat string: 'yesterday'",
    )


def _wait(condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_kill_9_mid_report_and_restart_counts_nothing_twice(
    fake: FakeStripe, database_url: str
) -> None:
    key = "ml_" + secrets.token_urlsafe(32)
    env = {**_env(fake), "METERLINE_BOOTSTRAP_KEY": key, "METERLINE_JOBS_POLL_SECONDS": "0.2"}
    headers = {"Authorization": f"Bearer {key}"}
    now = datetime.now(UTC)
    customers = {f"c{i}": fake.customer(f"c{i}") for i in range(10)}
    fake.meter("tokens")
    # The first stream request is taken by Stripe, then answered slowly: the kill lands
    # after Stripe has the events and before Meterline hears so.
    fake.fail("/v2/billing/meter_event_stream", kind="slow", delay=120)
    with serving("--database-url", database_url, env=env) as server:
        with httpx2.Client(base_url=server.base, headers=headers, timeout=30) as http:
            meter = {
                "key": "tokens",
                "event_type": "tokens",
                "aggregation": "sum",
                "stripe_event_name": "tokens",
            }
            assert http.post("/v1/meters", json=meter).status_code == 201
            for name, stripe_id in customers.items():
                body = {"external_id": name, "stripe_customer_id": stripe_id}
                assert http.post("/v1/customers", json=body).status_code == 201
            events = [
                {
                    "id": f"{name}-{h}",
                    "type": "tokens",
                    "customer": name,
                    "quantity": "1.5",
                    "timestamp": (_hour(now) - timedelta(hours=h, minutes=-20)).isoformat(),
                }
                for name in customers
                for h in range(2, 26)
            ]  # 240 customer-hours
            assert http.post("/v1/events", json={"events": events}).json()["accepted"] == 240
            put = {"secret_key": fake.secret_key, "mode": "meter_events"}
            assert http.put("/v1/integrations/stripe", json=put).status_code == 200
            assert http.post("/v1/integrations/stripe/sync").status_code == 202
            _wait(lambda: len(fake.presented) >= 100)
        server.process.kill()  # SIGKILL: no shutdown, no answer recorded
        server.process.wait()
    taken_before = dict(fake.accepted)
    assert len(taken_before) >= 100
    db = Database(database_url)
    with db.read() as session:  # nothing was recorded as sent before the kill
        statuses = Counter(session.scalars(select(StripeReport.status)))
    db.dispose()
    assert statuses == {"pending": 240}
    with (
        serving("--database-url", database_url, env=env) as server,
        httpx2.Client(base_url=server.base, headers=headers, timeout=30) as http,
    ):
        assert http.post("/v1/integrations/stripe/sync").status_code == 202
        _wait(lambda: http.get("/v1/integrations/stripe").json()["pending"] == 0)
        usage = {
            name: sum(
                Decimal(row["value"])
                for row in http.get(
                    "/v1/meters/tokens/usage",
                    params={
                        "customer": name,
                        "from": (now - timedelta(days=2)).isoformat(),
                        "to": now.isoformat(),
                    },
                ).json()["data"]
            )
            for name in customers
        }
    assert set(fake.accepted.values()) == {1}  # every identifier taken once
    assert any(fake.presented[i] == 2 for i in taken_before)  # sent again after the restart
    for name, stripe_id in customers.items():
        assert fake.total(stripe_id, "tokens") == int(usage[name]) == 36  # 24 hours of 1.5
