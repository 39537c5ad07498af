"""What the SDK raises, in one tree (every one is a ``meterline.errors.MeterlineError``,
so code that runs in library mode and over HTTP catches the same classes)::

    MeterlineError                       meterline.errors (library mode raises its subclasses)
    ├── APIError                         any problem+json answer: .status_code, .error_code,
    │                                    .problem() (the body)
    │   ├── AuthenticationError          401 / 403 (bad key, wrong scope, expired token)
    │   ├── NotFoundError                404
    │   ├── ConflictError                409
    │   ├── ValidationError              400 / 422 (.problem["errors"] names the fields)
    │   ├── RateLimitError               429
    │   └── ServerError                  5xx (after the retries)
    ├── InsufficientCredits              402, or a consume denied for credits
    ├── LimitExceeded                    a consume denied by a limit (.result: the answer)
    ├── ConnectionFailed                 the server could not be reached (after the retries)
    └── BufferFull                       ``track`` with ``on_overflow="raise"`` and a full buffer
"""

from __future__ import annotations

from typing import Any

from meterline import errors


class APIError(errors.MeterlineError):
    """The server answered with a problem: ``.status_code``, ``.error_code`` and
    ``.problem()`` (its problem+json body)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail") or problem.get("title") or status))
        self.status_code = status
        self._problem = problem
        self.error_code: str = str(problem.get("code", "unknown"))

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
    pass


class ServerError(APIError):
    pass


class InsufficientCredits(errors.InsufficientCredits):
    """Not enough credits: a 402, or a consume denied with ``insufficient_credits``."""

    def __init__(self, detail: str, result: Any = None, problem: dict[str, Any] | None = None):
        super().__init__(detail)
        self.result = result
        self._problem = problem

    def problem(self) -> dict[str, Any]:
        return self._problem or super().problem()


class LimitExceeded(errors.MeterlineError):
    """A consume denied by a limit (``.result`` is the check's answer)."""

    status = 429
    code = "limit_exceeded"
    title = "Limit exceeded"

    def __init__(self, detail: str, result: Any = None) -> None:
        super().__init__(detail)
        self.result = result


class ConnectionFailed(errors.MeterlineError):
    status = 503
    code = "connection_failed"
    title = "Meterline unreachable"


class BufferFull(errors.MeterlineError):
    status = 503
    code = "buffer_full"
    title = "Event buffer full"


def from_response(status: int, body: Any) -> errors.MeterlineError:
    problem = body if isinstance(body, dict) else {"detail": str(body)}
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
    elif status == 429:
        kind = RateLimitError
    elif status >= 500:
        kind = ServerError
    return kind(status, problem)
