"""The route class every router uses: request bodies parsed as strict JSON (RFC 8259).

Python's ``json`` accepts ``NaN`` and ``Infinity``, which no other JSON reader does
and which no column can store; orjson refuses them (400 ``malformed_json``) and is
faster. Numbers with more than 15 significant digits lose precision as JSON numbers:
send exact quantities and money as strings ("0.000000000001").
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

_UNSET = object()


class StrictJSONRequest(Request):
    _strict_json: Any = _UNSET

    async def json(self) -> Any:
        if self._strict_json is _UNSET:
            self._strict_json = orjson.loads(await self.body())
        return self._strict_json


class MeterlineRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
