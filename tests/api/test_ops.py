from __future__ import annotations

from fastapi.testclient import TestClient

from meterline.app import create_app
from meterline.config import Settings
from support import Api, assert_problem


def test_health_and_ready_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


def test_ready_is_503_when_the_database_is_unreachable() -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert_problem(client.get("/readyz"), 503, "not_ready")


def test_metrics_count_requests_by_route_template_and_status(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c1"})
    api.get("/v1/customers/c1")
    api.get("/v1/customers/nobody")
    text = api.client.get("/metrics").text
    assert (
        'meterline_http_requests_total{method="POST",route="/v1/customers",status="201"} 1.0'
        in text
    )
    assert (
        'meterline_http_requests_total{method="GET",route="/v1/customers/{external_id}",'
        'status="200"} 1.0' in text
    )
    assert (
        'meterline_http_requests_total{method="GET",route="/v1/customers/{external_id}",'
        'status="404"} 1.0' in text
    )
    assert "meterline_http_request_duration_seconds_bucket" in text


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Meterline"
    for path in (
        "/v1/customers",
        "/v1/customers/{external_id}",
        "/v1/api-keys",
        "/v1/api-keys/{key_id}",
    ):
        assert path in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
