"""A mixed load against a real `meterline serve` for the fault tests: consumes through
``POST /v1/check``, holds settled through reservations, and event batches, each from
threads of its own, every answer recorded (what was acknowledged, what was refused)."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2

LIMIT = 30  # the feature's hard daily limit
BATCH = 10  # events per batch
BATCH_ID = re.compile(r"e\d+-\d+")  # the batches' event ids (page views: not counted)


@dataclass
class Ledger:
    """What the server answered, by kind of request."""

    consumed: list[str] = field(default_factory=list)  # event ids of allowed consumes
    settled: list[str] = field(default_factory=list)  # event ids of settlements
    events: list[str] = field(default_factory=list)  # ids of acknowledged batch events
    statuses: dict[str, list[int]] = field(default_factory=dict)  # kind → every status
    problems: dict[str, set[str]] = field(default_factory=dict)  # kind → 503 codes seen
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, kind: str, response: httpx2.Response) -> None:
        with self.lock:
            self.statuses.setdefault(kind, []).append(response.status_code)
            if response.status_code == 503:
                code = response.json()["code"]
                if code == "storage_unavailable" and response.headers.get("retry-after") != "1":
                    code += " without Retry-After"
                self.problems.setdefault(kind, set()).add(code)

    def acknowledged(self) -> list[str]:
        return self.consumed + self.settled + self.events


def set_up(admin: httpx2.Client) -> None:
    """A metered, limited, credit-priced feature `q` and customer `acme` with credits."""
    meter = {"key": "q", "event_type": "q", "aggregation": "count"}
    assert admin.post("/v1/meters", json=meter).status_code == 201
    feature = {"limits": [{"window": "day", "max": str(LIMIT)}], "credit_cost": {"per_unit": "1"}}
    plan = {"key": "p", "name": "P", "currency": "USD", "features": {"q": feature}}
    assert admin.post("/v1/plans", json=plan).status_code == 201
    assert admin.post("/v1/customers", json={"external_id": "acme"}).status_code == 201
    r = admin.post("/v1/subscriptions", json={"customer": "acme", "plan": "p"})
    assert r.status_code == 201, r.text
    r = admin.post("/v1/customers/acme/credits/grants", json={"amount": "10000"})
    assert r.status_code == 201, r.text


_ids = itertools.count()


def _consume(client: httpx2.Client, ledger: Ledger) -> None:
    event_id = f"c{next(_ids)}"
    body = {"customer": "acme", "feature": "q", "consume": True, "id": event_id}
    r = client.post("/v1/check", json=body)
    ledger.saw("check", r)
    if r.status_code == 200 and r.json()["allowed"]:
        with ledger.lock:
            ledger.consumed.append(r.json()["event_id"])


def _hold_and_settle(client: httpx2.Client, ledger: Ledger) -> None:
    hold = {"customer": "acme", "feature": "q", "quantity": "1", "ttl_seconds": 60}
    r = client.post("/v1/reservations", json=hold)
    ledger.saw("hold", r)
    if r.status_code != 200 or not r.json()["allowed"]:
        return
    r = client.post(f"/v1/reservations/{r.json()['id']}/settle", json={"quantity": "1"})
    ledger.saw("settle", r)
    if r.status_code == 200 and r.json()["event_id"] is not None:
        with ledger.lock:
            ledger.settled.append(r.json()["event_id"])


def _batch(client: httpx2.Client, ledger: Ledger) -> None:
    n = next(_ids)
    ids = [f"e{n}-{i}" for i in range(BATCH)]
    events = [{"id": i, "type": "page_view", "customer": "acme"} for i in ids]
    r = client.post("/v1/events", json={"events": events})
    ledger.saw("events", r)
    if r.status_code == 200:
        assert r.json()["accepted"] + r.json()["duplicates"] == BATCH, r.text
        with ledger.lock:
            ledger.events.extend(ids)


ACTIONS = (_consume, _hold_and_settle, _batch)


@contextmanager
def mixed_load(base: str, key: str, threads: int = 3) -> Iterator[Ledger]:
    """Threads sending the mix (each its own kind of request) until the block ends.
    Transport errors (the server gone) are unacknowledged requests: not recorded."""
    ledger = Ledger()
    stop = threading.Event()

    def run(index: int) -> None:
        action = ACTIONS[index % len(ACTIONS)]
        with httpx2.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client:
            while not stop.is_set():
                try:
                    action(client, ledger)
                except httpx2.TransportError:
                    stop.wait(0.05)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield ledger
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)


def stored_ids(admin: httpx2.Client) -> list[str]:
    """Every event id of customer acme, through the API (all pages)."""
    ids: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"customer": "acme", "limit": 1000}
        if after:
            params["after"] = after
        page = admin.get("/v1/events", params=params)
        assert page.status_code == 200, page.text
        ids += [e["id"] for e in page.json()["data"]]
        after = page.json()["next_cursor"]
        if not after:
            return ids


def q_used(admin: httpx2.Client) -> tuple[str, str]:
    """The day limit's (used, max) for acme's feature q."""
    features = admin.get("/v1/customers/acme/entitlements").json()["features"]
    day = next(f for f in features if f["feature"] == "q")["limits"][0]
    return day["used"], day["max"]
