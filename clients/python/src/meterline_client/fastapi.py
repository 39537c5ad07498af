"""A FastAPI dependency that meters and limits an endpoint (SPEC §7)::

    from fastapi import Depends, FastAPI
    import meterline_client
    from meterline_client.fastapi import install, require_feature

    client = meterline_client.Client(api_key=..., base_url=...)
    app = FastAPI()
    install(app)  # refusals as application/problem+json

    scans = require_feature(client, "ocr_scan", customer=lambda r: r.headers["x-org"])

    @app.post("/scan", dependencies=[Depends(scans)])
    def scan() -> dict: ...

Each call consumes one unit (or ``quantity``) before the endpoint runs; a limit answers
429, missing credits 402, both as problem+json (``limit_exceeded``,
``insufficient_credits``) carrying the check's answer. When Meterline cannot decide (it
answers 5xx, such as 503 ``decision_unavailable`` when its database is unavailable, or
cannot be reached, after the client's retries) the endpoint does not run either: 503
``decision_unavailable`` (fail closed). FastAPI is not a dependency of
this package (``pip install 'meterline-client[fastapi]'``); ``meterline.fastapi`` in the
server package is this module.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from meterline_client import AsyncClient, CheckResult, Client
from meterline_client.errors import (
    ConnectionFailed,
    InsufficientCredits,
    LimitExceeded,
    ServerError,
)

CustomerOf = Callable[[Request], str] | Callable[[Request], Awaitable[str]]


class FeatureDenied(HTTPException):
    """A refused consume: 429 (a limit) or 402 (credits); ``detail`` is problem+json."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status_code=status, detail=problem)
        self.problem = problem


def _problem(status: int, code: str, title: str, result: CheckResult | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:meterline:problem:{code}",
        "title": title,
        "status": status,
        "detail": f"{result.feature if result else 'feature'}: {title.lower()}",
        "code": code,
    }
    if result is not None:
        body["limits"] = result.limits
        body["credits"] = result.credits
    return body


def require_feature(
    client: Client | AsyncClient, feature: str, *, customer: CustomerOf, quantity: Any = 1
) -> Callable[[Request], Awaitable[CheckResult]]:
    """The dependency: consume ``quantity`` of ``feature`` for ``customer(request)``."""

    async def dependency(request: Request) -> CheckResult:
        who = customer(request)
        if inspect.isawaitable(who):
            who = await who
        try:
            if isinstance(client, AsyncClient):
                return await client.consume(str(who), feature, quantity)
            return await run_in_threadpool(client.consume, str(who), feature, quantity)
        except LimitExceeded as exc:
            raise FeatureDenied(
                429, _problem(429, "limit_exceeded", "Limit exceeded", exc.result)
            ) from exc
        except InsufficientCredits as exc:
            problem = _problem(402, "insufficient_credits", "Insufficient credits", exc.result)
            raise FeatureDenied(402, problem) from exc
        except (ServerError, ConnectionFailed) as exc:  # fail closed: no decision, no use
            problem = _problem(503, "decision_unavailable", "Decision unavailable", None)
            problem["detail"] = f"{feature}: Meterline could not decide ({exc})"
            raise FeatureDenied(503, problem) from exc

    return dependency


def install(app: FastAPI) -> None:
    """Answer ``FeatureDenied`` as application/problem+json (without it FastAPI answers
    the same status with ``{"detail": problem}``)."""

    async def handler(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FeatureDenied)
        return JSONResponse(exc.problem, exc.status_code, media_type="application/problem+json")

    app.add_exception_handler(FeatureDenied, handler)
