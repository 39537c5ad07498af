from __future__ import annotations

import pytest

from support import Api, assert_problem


def test_create_read_list(api: Api) -> None:
    r = api.post(
        "/v1/customers",
        json={
            "external_id": "org_123",
            "name": "Acme",
            "timezone": "Europe/Berlin",
            "email": "billing@acme.example",
            "metadata": {"tier": "gold", "seats": 12},
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["external_id"] == "org_123"
    assert created["timezone"] == "Europe/Berlin"
    assert created["parent"] is None
    assert created["metadata"] == {"tier": "gold", "seats": 12}
    assert created["created_at"].endswith("Z") or created["created_at"].endswith("+00:00")
    assert api.get("/v1/customers/org_123").json() == created
    assert api.get("/v1/customers").json() == {"data": [created], "next_cursor": None}


def test_defaults(api: Api) -> None:
    created = api.post("/v1/customers", json={"external_id": "u1"}).json()
    assert created["timezone"] == "UTC"
    assert created["metadata"] == {}
    assert created["name"] is None


def test_duplicate_external_id_is_409(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c1", "name": "first"})
    assert_problem(api.post("/v1/customers", json={"external_id": "c1"}), 409, "already_exists")
    assert api.get("/v1/customers/c1").json()["name"] == "first"


def test_members_name_their_organization(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "org"})
    r = api.post("/v1/customers", json={"external_id": "member", "parent": "org"})
    assert r.json()["parent"] == "org"
    api.post("/v1/customers", json={"external_id": "loner"})
    members = api.get("/v1/customers", params={"parent": "org"}).json()["data"]
    assert [m["external_id"] for m in members] == ["member"]


def test_unknown_parent_is_422(api: Api) -> None:
    body = assert_problem(
        api.post("/v1/customers", json={"external_id": "m", "parent": "ghost"}),
        422,
        "validation_error",
    )
    assert body["errors"] == [
        {"field": "parent", "code": "unknown_parent", "message": body["errors"][0]["message"]}
    ]
    assert_problem(api.get("/v1/customers/m"), 404, "not_found")


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "utc+2", "", "../../etc/passwd", "Europe/"])
def test_bad_timezone_is_422(api: Api, timezone: str) -> None:
    body = assert_problem(
        api.post("/v1/customers", json={"external_id": "c", "timezone": timezone}),
        422,
        "validation_error",
    )
    assert body["errors"][0]["field"] == "timezone"
    assert body["errors"][0]["code"] == "invalid_timezone"
    assert body["errors"][0]["message"].startswith(f"{timezone} is not an IANA time zone")


@pytest.mark.parametrize("external_id", ["", "a b", "a/b", "x" * 256, "tab\there", "q?x"])
def test_bad_external_id_is_422(api: Api, external_id: str) -> None:
    body = assert_problem(
        api.post("/v1/customers", json={"external_id": external_id}), 422, "validation_error"
    )
    assert body["errors"][0]["field"] == "external_id"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("email", "not-an-email", "invalid_email"),
        ("metadata", {"blob": "x" * 17000}, "metadata_too_large"),
        ("metadata", ["not", "an", "object"], "dict_type"),
    ],
)
def test_bad_fields_are_422(api: Api, field: str, value: object, code: str) -> None:
    body = assert_problem(
        api.post("/v1/customers", json={"external_id": "c", field: value}), 422, "validation_error"
    )
    assert (body["errors"][0]["field"], body["errors"][0]["code"]) == (field, code)


def test_patch_changes_only_what_is_sent(api: Api) -> None:
    api.post(
        "/v1/customers",
        json={"external_id": "c", "name": "Old", "email": "a@b.co", "metadata": {"a": 1}},
    )
    r = api.patch("/v1/customers/c", json={"name": "New", "timezone": "Asia/Tokyo"})
    assert r.status_code == 200
    got = r.json()
    assert (got["name"], got["email"], got["timezone"], got["metadata"]) == (
        "New",
        "a@b.co",
        "Asia/Tokyo",
        {"a": 1},
    )
    assert got["updated_at"] > got["created_at"]
    cleared = api.patch("/v1/customers/c", json={"email": None, "metadata": {"b": 2}}).json()
    assert cleared["email"] is None
    assert cleared["metadata"] == {"b": 2}
    assert api.get("/v1/customers/c").json() == cleared


def test_patch_cannot_null_the_timezone_or_rename(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c", "timezone": "Europe/Paris"})
    assert_problem(api.patch("/v1/customers/c", json={"timezone": None}), 422, "validation_error")
    body = assert_problem(
        api.patch("/v1/customers/c", json={"external_id": "d"}), 422, "validation_error"
    )
    assert body["errors"][0]["code"] == "unknown_field"
    assert api.get("/v1/customers/c").json()["timezone"] == "Europe/Paris"


def test_reparenting_and_detaching(api: Api) -> None:
    for cid in ("org1", "org2", "m"):
        api.post("/v1/customers", json={"external_id": cid})
    assert api.patch("/v1/customers/m", json={"parent": "org1"}).json()["parent"] == "org1"
    assert api.patch("/v1/customers/m", json={"parent": "org2"}).json()["parent"] == "org2"
    assert api.patch("/v1/customers/m", json={"parent": None}).json()["parent"] is None


def test_parent_cycles_are_refused(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "a"})
    api.post("/v1/customers", json={"external_id": "b", "parent": "a"})
    api.post("/v1/customers", json={"external_id": "c", "parent": "b"})
    for target, parent in [("a", "a"), ("a", "b"), ("a", "c")]:
        body = assert_problem(
            api.patch(f"/v1/customers/{target}", json={"parent": parent}), 422, "validation_error"
        )
        assert body["errors"][0]["code"] == "parent_cycle"
    assert api.get("/v1/customers/a").json()["parent"] is None


def test_delete_archives_and_frees_the_external_id(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c", "name": "first"})
    assert api.delete("/v1/customers/c").status_code == 204
    assert_problem(api.get("/v1/customers/c"), 404, "not_found")
    assert api.get("/v1/customers").json()["data"] == []
    assert_problem(api.delete("/v1/customers/c"), 404, "not_found")
    again = api.post("/v1/customers", json={"external_id": "c", "name": "second"})
    assert again.status_code == 201
    assert api.get("/v1/customers/c").json()["name"] == "second"


def test_organization_with_members_cannot_be_deleted(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "org"})
    api.post("/v1/customers", json={"external_id": "m", "parent": "org"})
    body = assert_problem(api.delete("/v1/customers/org"), 409, "customer_has_members")
    assert "'m'" in body["detail"]
    api.patch("/v1/customers/m", json={"parent": None})
    assert api.delete("/v1/customers/org").status_code == 204


def test_deleted_customer_cannot_become_a_parent(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "gone"})
    api.delete("/v1/customers/gone")
    body = assert_problem(
        api.post("/v1/customers", json={"external_id": "m", "parent": "gone"}),
        422,
        "validation_error",
    )
    assert body["errors"][0]["code"] == "unknown_parent"


def test_paging_walks_every_customer_once(api: Api) -> None:
    ids = [f"c{i:03d}" for i in range(23)]
    for cid in ids:
        api.post("/v1/customers", json={"external_id": cid})
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 10}
        if after:
            params["after"] = after
        page = api.get("/v1/customers", params=params).json()
        seen += [c["external_id"] for c in page["data"]]
        pages += 1
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == ids
    assert pages == 3
    assert len(api.get("/v1/customers").json()["data"]) == 23  # default limit 50


def test_external_ids_with_url_characters_round_trip(api: Api) -> None:
    cid = "ana+billing@example.com:team|42"
    assert api.post("/v1/customers", json={"external_id": cid}).status_code == 201
    from urllib.parse import quote

    assert api.get(f"/v1/customers/{quote(cid, safe='')}").json()["external_id"] == cid
