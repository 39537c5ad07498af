"""Two real `meterline serve` processes on PostgreSQL share one key's limit, and the
Python client surfaces the refusal as ``RateLimitError`` with the server's Retry-After."""

from __future__ import annotations

import pytest

import meterline
from cli_support import serving_twice

pytestmark = pytest.mark.e2e
BURST = 10


def test_two_processes_share_a_keys_limit(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("separate `serve` processes share a limit through PostgreSQL")
    env = {"METERLINE_RATE_LIMIT_PER_SECOND": "0.01", "METERLINE_RATE_LIMIT_BURST": str(BURST)}
    with serving_twice(database_url, env=env) as (_, clients):
        answers = [clients[i % 2].get("/v1/meters") for i in range(3 * BURST)]
        assert [r.status_code for r in answers] == [200] * BURST + [429] * (2 * BURST)
        for refused in answers[BURST:]:
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
