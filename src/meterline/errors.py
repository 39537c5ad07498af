"""Every expected failure, each with a stable snake_case ``code`` and an HTTP status.

The tree (its root derives from ``meterline_client.errors.MeterlineError``, the root of
the Python client's errors, so ``except meterline.MeterlineError`` catches library mode's
failures and the client's alike; each instance's ``error_code`` is its ``code``)::

    MeterlineError                      500 internal_error (only ever a bug)
    ├── BadRequest                      400 bad_request
    │   ├── MalformedJson               400 malformed_json
    │   ├── InvalidCharacter            400 invalid_character (NUL in a path or query)
    │   └── InvalidCursor               400 invalid_cursor
    ├── Unauthorized                    401 unauthorized
    │   └── InvalidApiKey               401 invalid_api_key
    ├── InsufficientCredits             402 insufficient_credits
    ├── Forbidden                       403 forbidden
    │   └── InsufficientScope           403 insufficient_scope
    ├── NotFound                        404 not_found
    ├── MethodNotAllowed                405 method_not_allowed
    ├── Conflict                        409 conflict
    │   ├── AlreadyExists               409 already_exists
    │   └── CustomerHasMembers          409 customer_has_members
    ├── PayloadTooLarge                 413 payload_too_large
    ├── UnsupportedMediaType            415 unsupported_media_type
    ├── ValidationFailed                422 validation_error (field-level ``errors``)
    │   └── NotCounted                  422 not_counted
    ├── RateLimited                     429 rate_limited (``Retry-After``: ``retry_after``)
    └── StorageUnavailable              503 storage_unavailable (the database did not
                                        answer; nothing was done: retry)

Rendered as ``application/problem+json`` (RFC 9457) by ``meterline.api.problems``:
``{"type", "title", "status", "detail", "code", "errors"?}``. The ``type`` is the URN
``urn:meterline:problem:<code>``, so clients may switch on either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import meterline_client.errors


@dataclass(frozen=True)
class FieldError:
    """One invalid field: its dotted path in the request, a code and a message."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class MeterlineError(meterline_client.errors.MeterlineError):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"
    default_detail: ClassVar[str] = "Something went wrong on our side."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors or []
        self.extra = extra or {}
        self.error_code = self.code
        super().__init__(self.detail)

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:meterline:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body

    def response_headers(self) -> dict[str, str]:
        """HTTP headers that go with this error's response."""
        return {}


class BadRequest(MeterlineError):
    status = 400
    code = "bad_request"
    title = "Bad request"
    default_detail = "The request could not be understood."


class MalformedJson(BadRequest):
    code = "malformed_json"
    title = "Malformed JSON"
    default_detail = "The request body is not valid JSON."


class InvalidCharacter(BadRequest):
    code = "invalid_character"
    title = "Invalid character"
    default_detail = "The request holds a NUL character, which no text may contain."


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "Invalid cursor"
    default_detail = "The `after` cursor is not one this list handed out."


class Unauthorized(MeterlineError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    default_detail = "Send an API key as `Authorization: Bearer ml_…`."


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"
    title = "Invalid API key"
    default_detail = "The API key is unknown or has been revoked."


class InsufficientCredits(MeterlineError):
    status = 402
    code = "insufficient_credits"
    title = "Insufficient credits"
    default_detail = "The credit balance does not cover this."


class Forbidden(MeterlineError):
    status = 403
    code = "forbidden"
    title = "Forbidden"
    default_detail = "This key may not do that."


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    title = "Insufficient scope"


class NotFound(MeterlineError):
    status = 404
    code = "not_found"
    title = "Not found"
    default_detail = "No such object."


class MethodNotAllowed(MeterlineError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"
    default_detail = "This path does not take that method."


class Conflict(MeterlineError):
    status = 409
    code = "conflict"
    title = "Conflict"
    default_detail = "The request conflicts with the current state."


class AlreadyExists(Conflict):
    code = "already_exists"
    title = "Already exists"


class CustomerHasMembers(Conflict):
    code = "customer_has_members"
    title = "Customer has members"
    default_detail = "Move or delete the organization's members first."


class PayloadTooLarge(MeterlineError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"
    default_detail = "The request body is larger than this server accepts."


class UnsupportedMediaType(MeterlineError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"
    default_detail = "Send the body as application/json."


class ValidationFailed(MeterlineError):
    status = 422
    code = "validation_error"
    title = "Validation failed"
    default_detail = "Some fields are invalid; see `errors`."


class NotCounted(ValidationFailed):
    """Usage the feature's meter would not count (its filter leaves it out, or its value
    is missing): a consume, hold or settlement of it would record nothing, so it is
    refused rather than allowed for free."""

    code = "not_counted"
    title = "Not counted"
    default_detail = "The feature's meter would not count this usage."


class RateLimited(MeterlineError):
    status = 429
    code = "rate_limited"
    title = "Rate limited"
    default_detail = "Too many requests; retry later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageUnavailable(MeterlineError):
    """The database could not be reached or did not answer in time (connections cut,
    a lock held elsewhere): nothing was acknowledged, and the same request may be sent
    again (events and consumes with ids are idempotent)."""

    status = 503
    code = "storage_unavailable"
    title = "Storage unavailable"
    default_detail = "The database is unavailable; nothing was stored. Retry later."

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


def invalid(field: str, code: str, message: str) -> ValidationFailed:
    """A 422 for one field: ``raise invalid("timezone", "invalid_timezone", "…")``."""
    return ValidationFailed(message, errors=[FieldError(field, code, message)])
