"""CORS for customer tokens only (SPEC §11): a browser holding a customer token may call
the routes a token may call from the origins in ``METERLINE_CORS_ORIGINS``; a request
with an API key never gets CORS headers, so no browser page can read an answer made
with a key (keys belong on servers).

- Preflight (``OPTIONS`` with ``Access-Control-Request-Method``): answered 204 with the
  CORS headers when the origin is allowed and the path and method are those of a route
  that accepts customer tokens; anything else goes on to the app (405, no CORS headers,
  so the browser refuses the call). A preflight carries no credentials, so what decides
  here is the route, never a key.
- Other requests: the answer carries ``Access-Control-Allow-Origin`` when the origin is
  allowed and the ``Authorization`` is a customer token (``Bearer mlct_…``), errors
  included (so a page can read ``token_expired`` and fetch a new token).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterline.auth import tokens
from meterline.auth.deps import accepts_customer_tokens

ALLOWED_HEADERS = "authorization, content-type"
EXPOSED_HEADERS = "retry-after"
MAX_AGE_SECONDS = "600"


def _uses_token_guard(dependant: Dependant) -> bool:
    return any(
        accepts_customer_tokens(d.call) or _uses_token_guard(d) for d in dependant.dependencies
    )


def token_routes(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path pattern, methods) of every route a customer token may call."""
    return [
        (route.path_regex, frozenset(route.methods or ()))
        for route in routes
        if isinstance(route, APIRoute) and _uses_token_guard(route.dependant)
    ]


class CustomerTokenCors:
    """The middleware; ``routes`` are the API's routes (the routers' own, whose paths are
    complete: they are included without a prefix)."""

    def __init__(self, app: ASGIApp, origins: list[str], routes: Iterable[Any]) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)
        self._routes = token_routes(routes)

    def _allowed(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or origin in self.origins)

    def _methods_for(self, scope: Scope) -> frozenset[str]:
        path = scope["path"]
        found: frozenset[str] = frozenset()
        for pattern, methods in self._routes:
            if pattern.match(path):
                found |= methods
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        wanted = headers.get("access-control-request-method")
        if scope["method"] == "OPTIONS" and wanted is not None:
            methods = self._methods_for(scope) if self._allowed(origin) else frozenset()
            if wanted.upper() in methods:
                preflight = Response(
                    status_code=204,
                    headers={
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
                        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                        "Access-Control-Max-Age": MAX_AGE_SECONDS,
                        "Vary": "Origin",
                    },
                )
                await preflight(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        shared = (
            self._allowed(origin)
            and scheme.lower() == "bearer"
            and credential.startswith(tokens.PREFIX)
        )

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if shared:
                    out["Access-Control-Allow-Origin"] = origin
                    out["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)
