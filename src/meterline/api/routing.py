"""The route class every router uses: request bodies parsed as strict JSON (RFC 8259).

Python's ``json`` accepts ``NaN`` and ``Infinity``, which no other JSON reader does
and which no column can store; orjson refuses them (400 ``malformed_json``) and is
faster. Numbers with more than 15 significant digits lose precision as JSON numbers:
send exact quantities and money as strings ("0.000000000001"). A NUL character in
any key or string (422 ``invalid_character``) and nesting deeper than 32 levels (422
``too_deep``) are refused: no column could hold them and be read back.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from meterline.errors import FieldError, MeterlineError, ValidationFailed
from meterline.kit import payload as payloads

_UNSET = object()


class CarriedProblem(HTTPException):
    """A problem raised while FastAPI reads a body: FastAPI turns anything but an
    ``HTTPException`` raised there into a generic 400, so the problem rides on one."""

    def __init__(self, error: MeterlineError) -> None:
        super().__init__(status_code=error.status, detail=error.detail)
        self.error = error


class StrictJSONRequest(Request):
    _strict_json: Any = _UNSET

    async def json(self) -> Any:
        if self._strict_json is _UNSET:
            payload = orjson.loads(await self.body())
            found = payloads.problem(payload)
            if found is not None:
                where, code, message = found
                field = where or "body"
                error = ValidationFailed(
                    f"{field}: {message}", errors=[FieldError(field, code, message)]
                )
                raise CarriedProblem(error)
            self._strict_json = payload
        return self._strict_json


class MeterlineRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
