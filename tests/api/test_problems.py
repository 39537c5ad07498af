"""Every failure a client can cause answers problem+json with a stable code, never 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import Api, assert_problem


def test_malformed_json_is_400(api: Api) -> None:
    r = api.post(
        "/v1/customers", content=b'{"external_id": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(r, 400, "malformed_json")
    assert "not valid JSON" in body["detail"]


def test_json_that_is_not_an_object_is_422(api: Api) -> None:
    assert_problem(api.post("/v1/customers", json=["org_1"]), 422, "validation_error")


def test_non_json_content_type_is_415(api: Api) -> None:
    r = api.post(
        "/v1/customers",
        content=b"external_id=org_1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    body = assert_problem(r, 415, "unsupported_media_type")
    assert "application/json" in body["detail"]


def test_field_errors_name_each_field(api: Api) -> None:
    r = api.post(
        "/v1/customers",
        json={"name": "x" * 300, "timezone": "Mars/Olympus", "colour": "red"},
    )
    body = assert_problem(r, 422, "validation_error")
    codes = {e["field"]: e["code"] for e in body["errors"]}
    assert codes == {
        "external_id": "missing_field",
        "name": "string_too_long",
        "timezone": "invalid_timezone",
        "colour": "unknown_field",
    }
    assert all(e["message"] for e in body["errors"])


def test_missing_key_is_401_with_bearer_challenge(api: Api) -> None:
    r = api.client.get("/v1/customers")
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ml_" + "x" * 43,  # well formed, unknown
        "Bearer not-a-key",
        "Bearer ",
    ],
)
def test_bad_key_is_401(api: Api, header: str) -> None:
    r = api.client.get("/v1/customers", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["code"] in {"invalid_api_key", "unauthorized"}


def test_wrong_auth_scheme_is_401(api: Api) -> None:
    r = api.client.get("/v1/customers", headers={"Authorization": f"Basic {api.key}"})
    body = assert_problem(r, 401, "unauthorized")
    assert "Bearer" in body["detail"]


def test_unknown_route_is_404_problem(api: Api) -> None:
    assert_problem(api.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(api.client.get("/nothing"), 404, "not_found")


def test_wrong_method_is_405_problem(api: Api) -> None:
    assert_problem(api.request("PUT", "/v1/customers"), 405, "method_not_allowed")


def test_invalid_cursor_is_400(api: Api) -> None:
    assert_problem(api.get("/v1/customers", params={"after": "garbage!"}), 400, "invalid_cursor")
    assert_problem(api.get("/v1/api-keys", params={"after": "eyJrIjogMX0"}), 400, "invalid_cursor")


def test_limit_out_of_range_is_422(api: Api) -> None:
    body = assert_problem(api.get("/v1/customers", params={"limit": 1001}), 422, "validation_error")
    assert body["errors"][0]["field"] == "limit"


def test_declared_oversized_body_is_413(api: Api) -> None:
    big = b'{"external_id": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = api.post("/v1/customers", content=big, headers={"content-type": "application/json"})
    assert_problem(r, 413, "payload_too_large")
    assert api.get("/v1/customers").json()["data"] == []


def test_streamed_oversized_body_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"external_id": "'
        for _ in range(11):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    r = api.post("/v1/customers", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413, "payload_too_large")


def test_body_limit_is_configurable(database_url: str) -> None:
    from fastapi.testclient import TestClient

    from meterline.app import create_app
    from meterline.config import Settings

    app = create_app(Settings(database_url=database_url, max_body_bytes=2048))
    with TestClient(app) as client:
        r = client.post("/v1/customers", content=b"x" * 4096)
    assert_problem(r, 413, "payload_too_large")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
customer_bodies = st.fixed_dictionaries(
    {},
    optional={
        "external_id": json_values | st.text(max_size=300),
        "name": json_values,
        "email": json_values | st.emails(),
        "parent": json_values,
        "timezone": json_values | st.sampled_from(["UTC", "Europe/Berlin", "../etc/passwd"]),
        "metadata": json_values,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=customer_bodies | json_values)
def test_no_client_input_gives_a_500(api: Api, body: object) -> None:
    r = api.post("/v1/customers", json=body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
    patched = api.patch("/v1/customers/anyone", json=body)
    assert patched.status_code < 500, patched.text


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_standard_json_numbers_are_refused(api: Api, constant: bytes) -> None:
    body = b'{"external_id": "c", "metadata": {"x": ' + constant + b"}}"
    r = api.post("/v1/customers", content=body, headers={"content-type": "application/json"})
    assert_problem(r, 400, "malformed_json")
    assert_problem(api.get("/v1/customers/c"), 404, "not_found")
