from __future__ import annotations

import pytest

from support import Api, assert_problem


def test_created_key_is_shown_once_and_works(api: Api) -> None:
    r = api.post("/v1/api-keys", json={"name": "backend ingest", "scopes": ["ingest"]})
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("ml_")
    assert len(created["key"]) >= 40
    assert created["scopes"] == ["ingest"]
    assert created["prefix"] == created["key"][:11]
    listed = api.get("/v1/api-keys").json()["data"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine
    assert mine["prefix"] == created["prefix"]
    assert created["key"] not in api.get("/v1/api-keys").text


def test_ingest_key_is_refused_on_admin_endpoints(api: Api) -> None:
    ingest = api.new_key("ingest")
    assert_problem(
        ingest.post("/v1/customers", json={"external_id": "c1"}), 403, "insufficient_scope"
    )
    assert_problem(ingest.get("/v1/api-keys"), 403, "insufficient_scope")
    assert_problem(
        ingest.post("/v1/api-keys", json={"name": "x", "scopes": ["admin"]}),
        403,
        "insufficient_scope",
    )
    assert_problem(ingest.get("/v1/customers"), 403, "insufficient_scope")


def test_read_key_reads_but_does_not_write(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c1"})
    reader = api.new_key("read")
    assert reader.get("/v1/customers/c1").status_code == 200
    assert [c["external_id"] for c in reader.get("/v1/customers").json()["data"]] == ["c1"]
    assert_problem(reader.patch("/v1/customers/c1", json={"name": "n"}), 403, "insufficient_scope")
    assert_problem(reader.delete("/v1/customers/c1"), 403, "insufficient_scope")


def test_deleted_key_stops_working_at_once(api: Api) -> None:
    extra = api.new_key("admin")
    key_id = next(
        k["id"]
        for k in api.get("/v1/api-keys").json()["data"]
        if k["name"] == "admin" and k["prefix"] == extra.key[:11]
    )
    assert extra.get("/v1/customers").status_code == 200
    assert api.delete(f"/v1/api-keys/{key_id}").status_code == 204
    assert_problem(extra.get("/v1/customers"), 401, "invalid_api_key")
    assert key_id not in {k["id"] for k in api.get("/v1/api-keys").json()["data"]}
    assert_problem(api.delete(f"/v1/api-keys/{key_id}"), 404, "not_found")


def test_last_used_time_is_recorded(api: Api) -> None:
    reader = api.new_key("read")
    listed = {k["prefix"]: k for k in api.get("/v1/api-keys").json()["data"]}
    assert listed[reader.key[:11]]["last_used_at"] is None
    reader.get("/v1/customers")
    listed = {k["prefix"]: k for k in api.get("/v1/api-keys").json()["data"]}
    assert listed[reader.key[:11]]["last_used_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["owner"]}, "scopes.0"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"scopes": ["read"]}, "name"),
    ],
)
def test_invalid_key_requests_are_422(api: Api, body: dict[str, object], field: str) -> None:
    errors = assert_problem(api.post("/v1/api-keys", json=body), 422, "validation_error")["errors"]
    assert field in {e["field"] for e in errors}


def test_duplicate_scopes_collapse(api: Api) -> None:
    r = api.post("/v1/api-keys", json={"name": "x", "scopes": ["read", "ingest", "read"]})
    assert r.json()["scopes"] == ["ingest", "read"]


def test_keys_page_with_cursor(api: Api) -> None:
    for _ in range(4):
        api.new_key("read")
    first = api.get("/v1/api-keys", params={"limit": 3}).json()
    assert len(first["data"]) == 3
    assert first["next_cursor"]
    second = api.get("/v1/api-keys", params={"limit": 3, "after": first["next_cursor"]}).json()
    assert len(second["data"]) == 2  # 4 new keys + the workspace's first admin key
    assert second["next_cursor"] is None
    ids = [k["id"] for k in first["data"] + second["data"]]
    assert len(set(ids)) == 5


def test_ingest_key_reads_meter_definitions_but_nothing_else_of_meters(api: Api) -> None:
    """A backend's ingest-only key learns what a feature's meter counts (the SDK's
    decorator records through it); usage and changes stay behind `read` and `admin`."""
    created = api.post(
        "/v1/meters",
        json={
            "key": "tokens",
            "event_type": "llm_call",
            "aggregation": "sum",
            "value_property": "usage.tokens",
        },
    )
    assert created.status_code == 201, created.text
    ingest = api.new_key("ingest")
    one = ingest.get("/v1/meters/tokens")
    assert one.status_code == 200, one.text
    assert (one.json()["event_type"], one.json()["value_property"]) == ("llm_call", "usage.tokens")
    assert [m["key"] for m in ingest.get("/v1/meters").json()["data"]] == ["tokens"]
    assert_problem(ingest.get("/v1/meters/tokens/usage"), 403, "insufficient_scope")
    assert_problem(ingest.patch("/v1/meters/tokens", json={"name": "x"}), 403, "insufficient_scope")
    assert_problem(ingest.delete("/v1/meters/tokens"), 403, "insufficient_scope")
    refused = assert_problem(
        api.new_key("read").post("/v1/meters", json={}), 403, "insufficient_scope"
    )
    assert "admin" in refused["detail"]


def test_a_keys_rate_limit_is_set_shown_and_changed(api: Api) -> None:
    def created(rate_limit: object) -> dict[str, object]:
        body = {"name": "k", "scopes": ["read"], "rate_limit": rate_limit}
        r = api.post("/v1/api-keys", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    assert api.new_key("read").get("/v1/meters").status_code == 200
    default = created(None)
    assert default["rate_limit"] is None
    own = created({"per_second": 2.5, "burst": 4})
    assert own["rate_limit"] == {"per_second": "2.5", "burst": 4}
    # Without a burst: the rate rounded up (as METERLINE_RATE_LIMIT_BURST's default).
    assert created({"per_second": "0.5"})["rate_limit"] == {"per_second": "0.5", "burst": 1}
    assert created({"per_second": "10"})["rate_limit"] == {"per_second": "10", "burst": 10}
    unlimited = created({"per_second": None})
    assert unlimited["rate_limit"] == {"per_second": None, "burst": None}
    listed = {k["id"]: k["rate_limit"] for k in api.get("/v1/api-keys").json()["data"]}
    assert listed[own["id"]] == own["rate_limit"]
    assert listed[unlimited["id"]] == unlimited["rate_limit"]
    assert listed[default["id"]] is None

    # PATCH changes the fields sent: a name keeps the rate, a rate keeps the name.
    r = api.patch(f"/v1/api-keys/{own['id']}", json={"name": "renamed"})
    assert (r.json()["name"], r.json()["rate_limit"]) == ("renamed", own["rate_limit"])
    r = api.patch(f"/v1/api-keys/{own['id']}", json={"rate_limit": {"per_second": "100"}})
    assert (r.json()["name"], r.json()["rate_limit"]) == (
        "renamed",
        {"per_second": "100", "burst": 100},
    )
    r = api.patch(f"/v1/api-keys/{own['id']}", json={"rate_limit": None})
    assert r.json()["rate_limit"] is None
    listed = {k["id"]: k for k in api.get("/v1/api-keys").json()["data"]}
    assert (listed[own["id"]]["name"], listed[own["id"]]["rate_limit"]) == ("renamed", None)
    assert "key" not in r.json()  # the secret is never shown again

    assert_problem(api.patch("/v1/api-keys/key_nope", json={"name": "x"}), 404, "not_found")
    assert api.delete(f"/v1/api-keys/{default['id']}").status_code == 204
    revoked = api.patch(f"/v1/api-keys/{default['id']}", json={"name": "x"})
    assert_problem(revoked, 404, "not_found")
    errors = assert_problem(
        api.patch(f"/v1/api-keys/{own['id']}", json={"name": None}), 422, "validation_error"
    )["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [("name", "null_not_allowed")]


@pytest.mark.parametrize(
    ("rate_limit", "field", "code"),
    [
        ({"per_second": 0}, "rate_limit.per_second", "not_positive"),
        ({"per_second": "-1"}, "rate_limit.per_second", "not_positive"),
        ({"per_second": "0.00001"}, "rate_limit.per_second", "rate_out_of_range"),
        ({"per_second": "1000001"}, "rate_limit.per_second", "rate_out_of_range"),
        ({"per_second": "ten"}, "rate_limit.per_second", "invalid_decimal"),
        ({"per_second": 5, "burst": 0}, "rate_limit.burst", "greater_than_equal"),
        ({"per_second": 5, "burst": 1.5}, "rate_limit.burst", "int_from_float"),
        ({"burst": 3}, "rate_limit.per_second", "missing_field"),
        ({"per_second": None, "burst": 3}, "rate_limit", "burst_without_rate"),
        ({"per_second": 5, "every": "minute"}, "rate_limit.every", "unknown_field"),
        ("unlimited", "rate_limit", "model_attributes_type"),
    ],
)
def test_invalid_rate_limits_are_422(api: Api, rate_limit: object, field: str, code: str) -> None:
    body = {"name": "x", "scopes": ["read"], "rate_limit": rate_limit}
    errors = assert_problem(api.post("/v1/api-keys", json=body), 422, "validation_error")["errors"]
    assert (field, code) in {(e["field"], e["code"]) for e in errors}
    key_id = api.get("/v1/api-keys").json()["data"][0]["id"]
    patched = api.patch(f"/v1/api-keys/{key_id}", json={"rate_limit": rate_limit})
    errors = assert_problem(patched, 422, "validation_error")["errors"]
    assert (field, code) in {(e["field"], e["code"]) for e in errors}
