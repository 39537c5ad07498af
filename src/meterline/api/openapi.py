"""The OpenAPI document as clients should read it: every error is problem+json.

FastAPI documents a 422 ``HTTPValidationError`` body (``{"detail": [...]}``) that
Meterline never sends; this replaces it, on every operation, with the problem document
Meterline does send for any 4xx (RFC 9457, with a stable ``code``), so generated clients
(openapi-typescript, schemathesis) see the real shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "An error (RFC 9457). Switch on `code`, which is stable.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:meterline:problem:not_found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "examples": ["not_found"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "code", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_PROBLEM_RESPONSE = {
    "description": "A problem: `application/problem+json` with a stable `code`.",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, response in list(responses.items()):
                if status.startswith("4") or status.startswith("5"):
                    responses[status] = {
                        **_PROBLEM_RESPONSE,
                        "description": response.get("description", ""),
                    }
            responses.setdefault("4XX", _PROBLEM_RESPONSE)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
