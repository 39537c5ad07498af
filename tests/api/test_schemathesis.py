"""Every operation of /openapi.json, fuzzed by schemathesis through the real app: no
input may give a 5xx, and every answer must match the document (status, content type,
body schema). A fixed budget per operation keeps the run to a few minutes in CI."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from meterline.app import create_app
from support import Api

schema = schemathesis.openapi.from_dict(create_app().openapi())
# Valid inputs (they must be accepted or refused cleanly) and invalid ones (refused 4xx).
schema.config.generation.modes = list(schemathesis.GenerationMode)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25


@pytest.fixture
def seeded(api: Api) -> Api:
    """A workspace with something in it, so generated ids sometimes hit real objects."""
    api.post("/v1/meters", json={"key": "scan", "event_type": "scan", "aggregation": "count"})
    api.post(
        "/v1/plans",
        json={
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "features": {"scan": {"limits": [{"window": "day", "max": "5"}]}},
        },
    )
    api.post("/v1/customers", json={"external_id": "acme"})
    api.post("/v1/subscriptions", json={"customer": "acme", "plan": "pro"})
    api.post("/v1/events", json={"id": "e1", "type": "scan", "customer": "acme"})
    return api


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_gives_a_server_error_or_breaks_the_document(case: Any, seeded: Api) -> None:
    kwargs = case.as_transport_kwargs(
        base_url="http://testserver", headers={"Authorization": f"Bearer {seeded.key}"}
    )
    kwargs.pop("cookies", None)  # none are documented; httpx2 deprecates per-request ones
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")  # raw bodies, as httpx2 wants them
    response = seeded.client.request(**kwargs)
    case.validate_response(response, checks=CHECKS)
