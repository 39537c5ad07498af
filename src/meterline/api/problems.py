"""Errors rendered as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from meterline.entitlements.service import DecisionUnavailable
from meterline.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    MalformedJson,
    MeterlineError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

log = logging.getLogger("meterline")
PROBLEM_JSON = "application/problem+json"

# Pydantic's error types are stable snake_case already; a few read better renamed.
_CODE_FOR = {"missing": "missing_field", "extra_forbidden": "unknown_field"}


# Database errors that mean "not reachable now" (connections cut, a lock held elsewhere,
# no pooled connection in time): 503, nothing acknowledged, the client retries.
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
# Routes that decide (check, hold, settle, release): they fail closed, so a storage
# failure anywhere on the way (authentication included) is a denied decision.
DECISION_ROUTES = frozenset(
    {
        "/v1/check",
        "/v1/reservations",
        "/v1/reservations/{reservation_id}/settle",
        "/v1/reservations/{reservation_id}/release",
    }
)


def unavailable(request: Request) -> MeterlineError:
    """The 503 for a request the database could not serve."""
    route = getattr(request.scope.get("route"), "path", None)
    if request.method == "POST" and route in DECISION_ROUTES:
        return DecisionUnavailable("The database is unavailable; denied. Retry later.")
    return StorageUnavailable()


_HTTP_ERRORS: dict[int, type[MeterlineError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimited,
}


def problem_response(error: MeterlineError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error.problem(),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers={**error.response_headers(), **(headers or {})},
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def validation_problem(exc: RequestValidationError, content_type: str | None) -> MeterlineError:
    errors = list(exc.errors())
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            return MalformedJson(f"The request body is not valid JSON: {reason}".rstrip(": "))
    whole_body = any(tuple(e.get("loc", ())) == ("body",) for e in errors)
    if whole_body and not _is_json(content_type):
        return UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted: "
            "send a JSON object with Content-Type: application/json."
        )
    fields = [
        FieldError(
            _field(tuple(e.get("loc", ()))),
            _CODE_FOR.get(str(e.get("type")), str(e.get("type"))),
            str(e.get("msg")),
        )
        for e in errors
    ]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:3])
    return ValidationFailed(summary or None, errors=fields)


def install(app: FastAPI) -> None:
    @app.exception_handler(MeterlineError)
    async def _meterline(_: Request, exc: MeterlineError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return problem_response(exc, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc, request.headers.get("content-type")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        carried = getattr(exc, "error", None)
        if isinstance(carried, MeterlineError):
            return problem_response(carried)
        kind = _HTTP_ERRORS.get(
            exc.status_code, BadRequest if exc.status_code < 500 else MeterlineError
        )
        detail = "No such endpoint." if exc.status_code == 404 else str(exc.detail)
        return problem_response(kind(detail), dict(exc.headers) if exc.headers else None)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error reached the API: %s", exc.orig)
        return problem_response(Conflict("The change conflicts with stored data."))

    for kind in UNAVAILABLE:

        @app.exception_handler(kind)
        async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
            log.warning("database unavailable: %s", exc)
            return problem_response(unavailable(request))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(MeterlineError())
