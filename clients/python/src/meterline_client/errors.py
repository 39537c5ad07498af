"""What the client raises, in one tree::

    MeterlineError                       every error of this client (and the root of the
    │                                    server's own tree: ``meterline.MeterlineError``)
    ├── APIError                         any problem+json answer: .status_code, .error_code,
    │   │                                .problem() (the body)
    │   ├── AuthenticationError          401 / 403 (bad key, wrong scope, expired token)
    │   ├── NotFoundError                404
    │   ├── ConflictError                409
    │   ├── ValidationError              400 / 413 / 415 / 422 (.problem()["errors"])
    │   ├── RateLimitError               429 (.retry_after: the server's Retry-After, s)
    │   └── ServerError                  5xx (after the retries)
    ├── InsufficientCredits              402, or a consume denied for credits (.result)
    ├── LimitExceeded                    a consume denied by a limit (.result: the answer)
    ├── InvalidQuantity                  a negative or non-numeric quantity, refused before
    │                                    sending (also a ``ValueError``)
    ├── ConnectionFailed                 the server could not be reached (after the retries)
    └── BufferFull                       ``track`` with ``on_overflow="raise"`` and a full buffer

Every one has ``error_code``: the server's problem ``code`` for answers, a fixed code
(``limit_exceeded``, ``invalid_quantity``, ``connection_failed``, ``buffer_full``) for the
others. None derives from a server class: this package installs without the server.
"""

from __future__ import annotations

from typing import Any


class MeterlineError(Exception):
    """The root of everything Meterline raises, over HTTP or (in the server package's
    library mode, whose errors derive from this class) in-process."""

    error_code: str = "meterline_error"


class APIError(MeterlineError):
    """The server answered with a problem: ``.status_code``, ``.error_code`` and
    ``.problem()`` (its problem+json body)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.detail = str(problem.get("detail") or problem.get("title") or status)
        super().__init__(self.detail)
        self.status_code = status
        self._problem = problem
        self.error_code = str(problem.get("code", "unknown"))

    def problem(self) -> dict[str, Any]:
        return self._problem

    def __str__(self) -> str:
        return f"{self.status_code} {self.error_code}: {self.detail}"


class AuthenticationError(APIError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class ValidationError(APIError):
    pass


class RateLimitError(APIError):
    """Too many requests for this API key: ``retry_after`` is how many seconds the
    server asked to wait (its ``Retry-After`` header; None when it sent none)."""

    def __init__(
        self, status: int, problem: dict[str, Any], retry_after: float | None = None
    ) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class ServerError(APIError):
    pass


class _Refusal(MeterlineError):
    """A refusal with a fixed code, carrying the check's answer when there was one."""

    title = "Refused"
    http_status = 400

    def __init__(
        self, detail: str | None = None, result: Any = None, problem: dict[str, Any] | None = None
    ) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)
        self.result = result
        self._problem = problem

    def problem(self) -> dict[str, Any]:
        """The server's problem when it sent one, else one made of this error."""
        if self._problem is not None:
            return self._problem
        return {
            "type": f"urn:meterline:problem:{self.error_code}",
            "title": self.title,
            "status": self.http_status,
            "detail": self.detail,
            "code": self.error_code,
        }


class InsufficientCredits(_Refusal):
    """Not enough credits: a 402, or a consume denied with ``insufficient_credits``."""

    error_code = "insufficient_credits"
    title = "Insufficient credits"
    http_status = 402


class LimitExceeded(_Refusal):
    """A consume denied by a limit (``.result`` is the check's answer)."""

    error_code = "limit_exceeded"
    title = "Limit exceeded"
    http_status = 429


class InvalidQuantity(_Refusal, ValueError):
    """A quantity the server would refuse (negative, not a number): nothing was sent."""

    error_code = "invalid_quantity"
    title = "Invalid quantity"
    http_status = 422


class ConnectionFailed(_Refusal):
    error_code = "connection_failed"
    title = "Meterline unreachable"
    http_status = 503


class BufferFull(_Refusal):
    error_code = "buffer_full"
    title = "Event buffer full"
    http_status = 503


def from_response(status: int, body: Any, retry_after: float | None = None) -> MeterlineError:
    """The error for a problem answer (``retry_after``: its Retry-After header, s)."""
    problem = body if isinstance(body, dict) else {"detail": str(body)}
    if status == 429:
        return RateLimitError(status, problem, retry_after)
    if status == 402:
        return InsufficientCredits(
            str(problem.get("detail", "insufficient credits")), None, problem
        )
    kind: type[APIError] = APIError
    if status in (401, 403):
        kind = AuthenticationError
    elif status == 404:
        kind = NotFoundError
    elif status == 409:
        kind = ConflictError
    elif status in (400, 413, 415, 422):
        kind = ValidationError
    elif status >= 500:
        kind = ServerError
    return kind(status, problem)
