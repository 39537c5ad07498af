"""`POST /v1/check` has two ways through the server — the lean fast path for a cached
key and a valid body, the FastAPI route for everything else — with one behaviour.
And a change made through one process is seen at once by another."""

from __future__ import annotations

from fastapi.testclient import TestClient

from limits_support import customer_on, limits, meter, plan_with
from meterline.app import create_app
from meterline.config import Settings
from support import Api, assert_problem


def test_both_paths_answer_alike(api: Api) -> None:
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "day", "max": "3"}]}})
    customer_on(api, "alice")
    fresh = api.new_key("ingest")  # not cached yet: its first request takes the route
    body = {"customer": "alice", "feature": "question", "consume": True}
    answers = [fresh.post("/v1/check", json=body) for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.headers["content-type"] for a in answers] == ["application/json"] * 4
    bodies = [a.json() for a in answers]
    assert [b["allowed"] for b in bodies] == [True, True, True, False]
    assert [limits(b)["day"] for b in bodies] == [
        ("3", "1", "2"),
        ("3", "2", "1"),
        ("3", "3", "0"),
        ("3", "3", "0"),
    ]
    assert set(bodies[0]) == set(bodies[3])  # the same fields either way
    metrics = api.client.get("/metrics").text
    assert (
        'meterline_http_requests_total{method="POST",route="/v1/check",status="200"} 4.0' in metrics
    )


def test_refusals_on_the_fast_path_are_the_documented_ones(api: Api) -> None:
    meter(api, "question")
    plan_with(api, {"question": {}})
    customer_on(api, "alice")
    reader = api.new_key("read")
    assert reader.get("/v1/meters").status_code == 200  # the read key is cached now
    ok = {"customer": "alice", "feature": "question"}
    assert api.post("/v1/check", json=ok).status_code == 200  # the admin key is cached now
    assert_problem(reader.post("/v1/check", json=ok), 403, "insufficient_scope")
    problem = assert_problem(
        api.post("/v1/check", json={"customer": "alice"}), 422, "validation_error"
    )
    assert problem["errors"][0] == {
        "field": "feature",
        "code": "missing_field",
        "message": "Field required",
    }
    assert_problem(
        api.post("/v1/check", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "malformed_json",
    )
    assert_problem(
        api.post("/v1/check", content=b"{}", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_problem(
        api.post("/v1/check", json={**ok, "quantity": 2}, headers={}), 422, "validation_error"
    )
    assert_problem(
        api.with_key("ml_" + "x" * 43).post("/v1/check", json=ok), 401, "invalid_api_key"
    )


def test_a_change_through_one_process_is_seen_by_another_at_once(
    api: Api, settings: Settings
) -> None:
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "day", "max": "1"}]}})
    customer_on(api, "alice")
    body = {"customer": "alice", "feature": "question"}
    with TestClient(create_app(settings)) as second_client:
        second = api.with_client(second_client)
        assert limits(second.post("/v1/check", json=body).json())["day"] == (
            "1",
            "0",
            "1",
        )  # cached there now
        replacement = {
            "name": "plan",
            "currency": "USD",
            "features": {"question": {"limits": [{"window": "day", "max": "7"}]}},
        }
        assert api.request("PUT", "/v1/plans/plan", json=replacement).status_code == 200
        assert limits(second.post("/v1/check", json=body).json())["day"] == ("7", "0", "7")
        api.patch("/v1/customers/alice", json={"timezone": "Pacific/Kiritimati"})
        entitlements = second.get("/v1/customers/alice/entitlements").json()
        day = entitlements["features"][0]["limits"][0]
        assert day["window_start"].endswith("T10:00:00Z")  # midnight at UTC+14
        subscription = entitlements["subscription"]
        api.post(f"/v1/subscriptions/{subscription}/cancel", json={"at": "now"})
        assert second.post("/v1/check", json=body).json()["reason"] == "feature_not_in_plan"
