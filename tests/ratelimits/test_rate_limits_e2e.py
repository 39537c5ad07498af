"""Two real `meterline serve` processes on PostgreSQL share one key's limit — the
default's, and a key's own `rate_limit` — a key marked unlimited is never held, and the
Python client surfaces the refusal as ``RateLimitError`` with the server's Retry-After."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

import meterline
from cli_support import serving_twice

pytestmark = pytest.mark.e2e
BURST = 10


def new_key(admin: httpx2.Client, rate_limit: dict[str, Any]) -> dict[str, str]:
    body = {"name": "own", "scopes": ["read"], "rate_limit": rate_limit}
    r = admin.post("/v1/api-keys", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def test_two_processes_share_a_keys_limit(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("separate `serve` processes share a limit through PostgreSQL")
    env = {"METERLINE_RATE_LIMIT_PER_SECOND": "0.01", "METERLINE_RATE_LIMIT_BURST": str(BURST)}
    with serving_twice(database_url, env=env) as (admin, clients):
        # Two keys of their own, made with two of the admin key's BURST requests.
        own = new_key(admin, {"per_second": "0.01", "burst": 3})
        free = new_key(admin, {"per_second": None})
        left = BURST - 2
        answers = [clients[i % 2].get("/v1/meters") for i in range(3 * BURST)]
        assert [r.status_code for r in answers] == [200] * left + [429] * (3 * BURST - left)
        owns = [clients[i % 2].get("/v1/meters", headers=own).status_code for i in range(6)]
        assert owns == [200] * 3 + [429] * 3  # its own burst of 3, whichever process
        frees = [clients[i % 2].get("/v1/meters", headers=free) for i in range(2 * BURST)]
        assert {r.status_code for r in frees} == {200}
        for refused in answers[left:]:
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "rate_limited"
            assert 98 <= int(refused.headers["Retry-After"]) <= 100
        key = clients[0].headers["authorization"].removeprefix("Bearer ")
        client = meterline.Client(key, str(clients[1].base_url), max_retries=0)
        try:
            with pytest.raises(meterline.RateLimitError) as raised:
                client.check(customer="acme", feature="q")
        finally:
            client.close()
        assert raised.value.error_code == "rate_limited"
        assert raised.value.retry_after is not None
        assert 98 <= raised.value.retry_after <= 100
