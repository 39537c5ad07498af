"""`meterline serve` as a real process on a free port, driven over real HTTP."""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from cli_support import key_after, serving

pytestmark = pytest.mark.e2e


def test_bootstrap_key_then_customer_round_trip(database_url: str) -> None:
    key = "ml_" + secrets.token_urlsafe(32)
    with serving("--database-url", database_url, env={"METERLINE_BOOTSTRAP_KEY": key}) as server:
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx2.post(
            f"{server.base}/v1/customers",
            json={"external_id": "org_123", "name": "Acme", "timezone": "Europe/Berlin"},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        got = httpx2.get(f"{server.base}/v1/customers/org_123", headers=auth).json()
        assert (got["name"], got["timezone"]) == ("Acme", "Europe/Berlin")
        assert httpx2.get(f"{server.base}/readyz").json()["status"] == "ok"
        assert key not in server.output()  # a known key is never echoed


def test_first_start_prints_a_random_admin_key_once(database_url: str) -> None:
    with serving("--database-url", database_url) as server:
        key = key_after(server.output(), "Admin API key:")
        assert key.startswith("ml_")
        r = httpx2.get(f"{server.base}/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert [k["name"] for k in r.json()["data"]] == ["admin"]
    with serving("--database-url", database_url) as again:
        assert "API key" not in again.output()
        r = httpx2.get(f"{again.base}/v1/customers", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200


def test_new_user_walkthrough(tmp_path: Path) -> None:
    """The README's story: serve on SQLite, scoped keys, customers, isolation, errors."""
    with serving(cwd=tmp_path) as server:  # default database: ./meterline.db
        assert (tmp_path / "meterline.db").exists()
        admin = {"Authorization": f"Bearer {key_after(server.output(), 'Admin API key:')}"}
        base = f"{server.base}/v1"
        ingest = httpx2.post(
            f"{base}/api-keys", json={"name": "backend", "scopes": ["ingest"]}, headers=admin
        ).json()["key"]
        assert (
            httpx2.post(
                f"{base}/customers", json={"external_id": "org_1"}, headers=admin
            ).status_code
            == 201
        )
        listed = httpx2.get(f"{base}/customers", headers=admin).json()["data"]
        assert [c["external_id"] for c in listed] == ["org_1"]
        refused = httpx2.post(
            f"{base}/customers",
            json={"external_id": "x"},
            headers={"Authorization": f"Bearer {ingest}"},
        )
        assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
        bad_json = httpx2.post(
            f"{base}/customers", content=b"{", headers={**admin, "content-type": "application/json"}
        )
        assert (bad_json.status_code, bad_json.json()["code"]) == (400, "malformed_json")
        assert bad_json.headers["content-type"].startswith("application/problem+json")


def test_demo_serves_a_workspace_with_customers(tmp_path: Path) -> None:
    with serving("--demo", cwd=tmp_path) as server:
        assert (tmp_path / "meterline-demo.db").exists()
        key = key_after(server.output(), "Demo admin API key:")
        r = httpx2.get(f"{server.base}/v1/customers", headers={"Authorization": f"Bearer {key}"})
        ids = [c["external_id"] for c in r.json()["data"]]
        assert "org_acme" in ids
        assert len(ids) >= 5
        auth = {"Authorization": f"Bearer {key}"}
        meters = httpx2.get(f"{server.base}/v1/meters", headers=auth).json()["data"]
        assert {m["key"] for m in meters} >= {"api_call", "llm_tokens", "ocr_scan"}
        tokens = httpx2.get(
            f"{server.base}/v1/meters/llm_tokens/usage",
            params={"customer": "org_acme", "window": "day"},
            headers=auth,
        ).json()["data"]
        assert len(tokens) >= 25  # a month of days with usage
        assert all(int(day["value"]) > 0 for day in tokens)
        # Plans and subscriptions: every customer has entitlements with live numbers.
        acme = httpx2.get(f"{server.base}/v1/customers/user_alice/entitlements", headers=auth)
        assert (acme.json()["plan"], acme.json()["billed_to"]) == ("pro", "org_acme")
        solo = httpx2.get(f"{server.base}/v1/customers/user_solo/entitlements", headers=auth)
        assert solo.json()["plan"] == "explorer"  # the workspace's default plan
        # Live numbers in its limits (a day window may still be empty just after midnight
        # in the customer's zone: any limit with usage will do).
        features = acme.json()["features"]
        used = [Decimal(limit["used"]) for f in features for limit in f["limits"]]
        assert used
        assert max(used) > 0
        # Billing: amounts that add up to the cent, last month's invoice, this month's.
        usage = httpx2.get(f"{server.base}/v1/customers/user_alice/usage", headers=auth).json()
        assert usage["billed_to"] == "org_acme"
        assert len(usage["features"]) >= 10  # the catalog, every feature
        amounts = [Decimal(f["amount"]) for f in usage["features"]]
        assert Decimal(usage["total"]) == Decimal(usage["base_fee"]) + sum(amounts)
        assert any(amount > 0 for amount in amounts)
        invoices = httpx2.get(
            f"{server.base}/v1/invoices", params={"customer": "org_acme"}, headers=auth
        ).json()["data"]
        assert [i["status"] for i in invoices] == ["finalized"]
        assert Decimal(invoices[0]["total"]) == sum(
            Decimal(x["amount"]) for x in invoices[0]["lines"]
        )
        upcoming = httpx2.get(
            f"{server.base}/v1/customers/org_acme/invoices/upcoming", headers=auth
        ).json()
        assert upcoming["period"]["start"] == invoices[0]["period"]["end"]
        assert upcoming["total"] == usage["total"]
        # As the README says: Globex has run out of credits (advanced insights).
        globex = httpx2.get(f"{server.base}/v1/customers/org_globex/credits", headers=auth)
        assert globex.json()["balance"] == "0"
        # Every quantity answered with at most 12 places (a duration meter's hours).
        places = [len(f["used"].partition(".")[2]) for f in usage["features"]]
        assert max(places) <= 12
        assert any(f["feature"] == "compute_hours" and "." in f["used"] for f in usage["features"])
        # A consume the OCR meter would not count is refused, never allowed for free.
        check = {"customer": "org_acme", "feature": "ocr_scan", "consume": True}
        r = httpx2.post(f"{server.base}/v1/check", json=check, headers=auth)
        assert (r.status_code, r.json()["code"]) == (422, "not_counted"), r.text
        check["properties"] = {"document": "receipt"}
        first = httpx2.post(f"{server.base}/v1/check", json=check, headers=auth).json()
        again_ = httpx2.post(f"{server.base}/v1/check", json=check, headers=auth).json()
        day = [x["used"] for x in (first["limits"][0], again_["limits"][0])]
        assert int(day[1]) == int(day[0]) + 1  # each consume counted
        # Stripe: not connected, the mappings in place (storage is a peak, unmapped).
        stripe = httpx2.get(f"{server.base}/v1/integrations/stripe", headers=auth).json()
        assert (stripe["status"], stripe["mode"], stripe["pending"]) == ("not_connected", None, 0)
        assert stripe["unmapped"]["customers"] == 0
        assert stripe["unmapped"]["meters"] == []
        mapped = httpx2.get(
            f"{server.base}/v1/customers",
            params={"stripe_customer_id": "cus_DemoAcme"},
            headers=auth,
        ).json()["data"]
        assert [c["external_id"] for c in mapped] == ["org_acme"]
        names = {m["key"]: m["stripe_event_name"] for m in meters}
        assert (names["llm_tokens"], names["storage"]) == ("llm_tokens", None)
    with serving("--demo", cwd=tmp_path) as again:  # restart: same data, a fresh key
        key2 = key_after(again.output(), "Demo admin API key:")
        assert key2 != key
        r = httpx2.get(f"{again.base}/v1/customers", headers={"Authorization": f"Bearer {key2}"})
        assert [c["external_id"] for c in r.json()["data"]] == ids
