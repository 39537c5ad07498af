"""``POST /v1/check`` served without FastAPI's routing and dependency solving.

For a check those cost more CPU than the decision itself. This ASGI layer takes only
the common case — a key this process has cached, with the scope, and a JSON body that
validates — and answers it with the same model and the same ``decide`` as the route;
anything else (no or unknown key, a refused body) goes on to the FastAPI route, which
answers it the documented way.
"""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from meterline.api.deps import V1
from meterline.api.middleware import replay
from meterline.api.problems import problem_response
from meterline.auth.context import AuthContext
from meterline.auth.deps import cached_context
from meterline.auth.scopes import Scope as KeyScope
from meterline.entitlements.routes import JSON, check_unit
from meterline.entitlements.schemas import CheckRequest
from meterline.errors import MeterlineError
from meterline.ratelimits import service as ratelimits
from meterline.runtime import Runtime, runtime_of

CHECK_PATH = f"{V1}/check"
_CHECK_ROUTE = SimpleNamespace(path=CHECK_PATH)  # what the metrics middleware labels by


class CheckFastPath:
    """Answers ``POST /v1/check`` when it can, else passes the request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHECK_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        again = replay([{"type": "http.request", "body": body}])
        headers = dict(scope["headers"])
        state = runtime_of(scope["app"])
        auth = _bearer_context(state, headers)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip()
        request = None
        if (
            auth is not None
            and auth.allows(KeyScope.INGEST)
            and content_type == b"application/json"
            and b"\\u0000" not in body  # the route refuses it (invalid_character)
        ):
            try:
                request = CheckRequest.model_validate_json(body)
            except ValueError:
                request = None
        if request is None or auth is None:
            await self.app(scope, again, send)
            return
        scope["route"] = _CHECK_ROUTE  # for the metrics middleware
        rate = auth.rate  # the key's own rate, else the default; None: not limited
        try:
            if rate is not None:
                if state.rate_limiter.blocking:  # a database round trip: not on the loop
                    await run_in_threadpool(
                        ratelimits.enforce, state.rate_limiter, auth.key_id, rate
                    )
                else:
                    ratelimits.enforce(state.rate_limiter, auth.key_id, rate)
            # The decision writer answers this coroutine itself: no thread waits.
            unit = check_unit(state, auth.workspace_id, request)
            content = await state.decisions.submit_async(unit, request.customer)
        except MeterlineError as error:
            await problem_response(error)(scope, again, send)
            return
        await Response(content, media_type=JSON)(scope, again, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _bearer_context(state: Runtime, headers: dict[bytes, bytes]) -> AuthContext | None:
    scheme, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    return cached_context(state, secret.strip())
