"""CORS answers browsers holding a customer token, on the routes a token may call, from
the configured origins — and never a request made with an API key (preflight included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from meterline.api.cors import token_routes
from meterline.api.router import V1_ROUTERS
from meterline.app import create_app
from meterline.config import Settings
from support import Api

APP_ORIGIN = "https://app.example.com"


@pytest.fixture
def cors(settings: Settings, api: Api) -> Iterator[Api]:
    """Workspace A's admin on an app that allows APP_ORIGIN (same database as ``api``)."""
    allowed = settings.model_copy(update={"cors_origins": [APP_ORIGIN, "http://localhost:5173"]})
    with TestClient(create_app(allowed)) as client:
        yield api.with_client(client)


def setup(api: Api) -> str:
    assert (
        api.post(
            "/v1/meters", json={"key": "scan", "event_type": "scan", "aggregation": "count"}
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/v1/plans", json={"key": "p", "name": "P", "currency": "USD", "features": {"scan": {}}}
        ).status_code
        == 201
    )
    for org in ("acme", "globex"):
        assert api.post("/v1/customers", json={"external_id": org}).status_code == 201
        assert api.post("/v1/subscriptions", json={"customer": org, "plan": "p"}).status_code == 201
    token: str = api.post("/v1/customers/acme/tokens", json={}).json()["token"]
    return token


def preflight(api: Api, method: str, path: str, origin: str = APP_ORIGIN) -> dict[str, str]:
    r = api.client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return {k.lower(): v for k, v in r.headers.items()} | {"status": str(r.status_code)}


def test_the_routes_a_token_may_call_are_the_only_cors_routes() -> None:
    found = {
        (method, pattern.pattern)
        for pattern, methods in token_routes(r for router in V1_ROUTERS for r in router.routes)
        for method in methods
    }
    assert found == {
        ("POST", "^/v1/check$"),
        ("GET", "^/v1/customers/(?P<external_id>[^/]+)/entitlements$"),
        ("GET", "^/v1/customers/(?P<external_id>[^/]+)/credits$"),
        ("GET", "^/v1/customers/(?P<external_id>[^/]+)/usage$"),
        ("GET", "^/v1/customers/(?P<external_id>[^/]+)/usage/history$"),
        ("GET", "^/v1/customers/(?P<external_id>[^/]+)/credits/transactions$"),
        ("GET", "^/v1/meters/(?P<key>[^/]+)/usage$"),
    }


def test_preflight_is_answered_for_token_routes_from_allowed_origins_only(cors: Api) -> None:
    ok = preflight(cors, "GET", "/v1/customers/acme/entitlements")
    assert ok["status"] == "204"
    assert ok["access-control-allow-origin"] == APP_ORIGIN
    assert "GET" in ok["access-control-allow-methods"]
    assert "authorization" in ok["access-control-allow-headers"]
    assert preflight(cors, "POST", "/v1/check")["status"] == "204"
    for method, path in [
        ("POST", "/v1/events"),  # API keys only
        ("GET", "/v1/customers"),
        ("POST", "/v1/customers/acme/tokens"),
        ("DELETE", "/v1/customers/acme/entitlements"),  # a token route, not this method
    ]:
        refused = preflight(cors, method, path)
        assert "access-control-allow-origin" not in refused, (method, path)
        assert refused["status"] != "204"
    foreign = preflight(cors, "GET", "/v1/customers/acme/entitlements", "https://evil.example")
    assert "access-control-allow-origin" not in foreign


def test_answers_carry_cors_for_tokens_never_for_api_keys(cors: Api) -> None:
    token = setup(cors)
    browser = cors.with_key(token)
    origin = {"Origin": APP_ORIGIN}
    read = browser.get("/v1/customers/acme/entitlements", headers=origin)
    assert read.status_code == 200
    assert read.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "Origin" in read.headers["vary"]
    consumed = browser.post(
        "/v1/check", json={"customer": "acme", "feature": "scan", "consume": True}, headers=origin
    )
    assert consumed.status_code == 200
    assert consumed.headers["access-control-allow-origin"] == APP_ORIGIN
    # a refusal is readable by the page too (it must learn why)
    other = browser.get("/v1/customers/globex/usage", headers=origin)
    assert other.status_code == 403
    assert other.headers["access-control-allow-origin"] == APP_ORIGIN
    # the same reads with the workspace's API key: no CORS header, the browser refuses
    for key in (cors, cors.new_key("read")):
        keyed = key.get("/v1/customers/acme/entitlements", headers=origin)
        assert keyed.status_code == 200
        assert "access-control-allow-origin" not in keyed.headers
    unlisted = browser.get("/v1/customers/acme/usage", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in unlisted.headers


def test_without_origins_configured_there_is_no_cors(api: Api) -> None:
    token = setup(api)
    read = api.with_key(token).get(
        "/v1/customers/acme/entitlements", headers={"Origin": APP_ORIGIN}
    )
    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-origin" not in preflight(api, "POST", "/v1/check")


def test_origins_are_read_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_CORS_ORIGINS", "https://a.example, http://localhost:5173")
    assert Settings().cors_origins == ["https://a.example", "http://localhost:5173"]
    monkeypatch.setenv("METERLINE_CORS_ORIGINS", "https://a.example/app")
    with pytest.raises(ValueError, match="not an origin"):
        Settings()
