"""The customer portal: one customer's page for a customer token, nothing else."""

from __future__ import annotations

import re
from datetime import timedelta

from dashboard_support import Browser, populate
from meterline.kit.time import Clock, clock, utc_now
from meterline.runtime import runtime_of
from support import Api


def _token(api: Api, customer: str, ttl: int = 3600) -> str:
    made = api.post(f"/v1/customers/{customer}/tokens", json={"ttl_seconds": ttl})
    assert made.status_code == 201
    token: str = made.json()["token"]
    return token


def test_portal_shows_its_customer_with_the_apis_numbers(api: Api) -> None:
    populate(api)
    page = Browser.of(api).get(f"/portal/{_token(api, 'org_a')}")
    assert page.status_code == 200
    usage = api.get("/v1/customers/org_a/usage").json()
    for feature in usage["features"]:
        assert f'data-figure="used-{feature["feature"]}">{feature["used"]} ' in page.text
    upcoming = api.get("/v1/customers/org_a/invoices/upcoming").json()["total"]
    assert f'data-figure="upcoming">{upcoming} USD<' in page.text
    assert 'data-figure="balance">100<' in page.text
    assert "Org A" in page.text
    for elsewhere in ("Solo", "solo", "/dashboard/customers", "<form"):
        assert elsewhere not in page.text


def test_a_members_portal_shows_no_organization_invoices(api: Api) -> None:
    populate(api)
    page = Browser.of(api).get(f"/portal/{_token(api, 'user_a1')}")
    assert page.status_code == 200
    assert "Invoices go to org_a." in page.text
    assert 'data-figure="upcoming"' not in page.text


def test_an_expired_or_altered_token_gets_a_clear_page(api: Api) -> None:
    populate(api)
    token = _token(api, "org_a", ttl=60)
    with clock(Clock(utc_now() + timedelta(minutes=2))):
        expired = Browser.of(api).get(f"/portal/{token}")
    assert expired.status_code == 401
    assert "expired" in expired.text
    assert "Org A" not in expired.text
    payload, signature = token.split(".")
    altered = Browser.of(api).get(f"/portal/{payload}.{signature[::-1]}")
    assert altered.status_code == 401
    assert "Org A" not in altered.text


def test_portal_frame_ancestors_come_from_the_setting(api: Api) -> None:
    populate(api)
    token = _token(api, "org_a")
    page = Browser.of(api).get(f"/portal/{token}")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy  # the default: not framed
    assert page.headers["referrer-policy"] == "no-referrer"  # the token stays in this page
    settings = runtime_of(api.client.app).settings
    from fastapi.testclient import TestClient

    from meterline.app import create_app

    embedded = settings.model_copy(
        update={"portal_frame_ancestors": "https://app.example.com https://*.example.org"}
    )
    with TestClient(create_app(embedded)) as other:
        framed = other.get(f"/portal/{token}")
    assert framed.status_code == 200
    assert re.search(
        r"frame-ancestors https://app\.example\.com https://\*\.example\.org$",
        framed.headers["content-security-policy"],
    )
    assert "x-frame-options" not in framed.headers
