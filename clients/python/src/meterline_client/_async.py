"""``AsyncClient``: Meterline over HTTP for asyncio, the same verbs awaited.

``track`` buffers and a task of the running loop sends batches every ``flush_interval``
(or at ``batch_size``); ``await flush()`` sends everything, ``await aclose()`` flushes
and closes. Retries, ids and refusals work as in ``Client``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from meterline_client._core import (
    NO_METER_SECONDS,
    RETRY_STATUSES,
    CheckResult,
    F,
    Meter,
    Options,
    answer,
    backoff,
    check_body,
    denied,
    event,
    headers,
    hold_body,
    no_meter,
    retry_after,
    usage_decorator,
)
from meterline_client._core import quantity as valid_quantity
from meterline_client.errors import BufferFull, ConnectionFailed, MeterlineError, NotFoundError


class AsyncClient(Options):
    """Meterline over HTTP for asyncio (see the module's docstring)."""

    def __init__(self, api_key: str, base_url: str = "http://127.0.0.1:8000", **options: Any):
        super().__init__(api_key, base_url, **options)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers(api_key), timeout=self.timeout
        )
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()

    async def request(self, method: str, path: str, *, retry: bool = False, **kw: Any) -> Any:
        attempts = self.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            wait = None
            try:
                response = await self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise ConnectionFailed(f"{self.base_url}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt + 1 == attempts:
                    return answer(response)
                wait = retry_after(response)
            await asyncio.sleep(backoff(attempt, wait))
        raise AssertionError("unreachable")  # pragma: no cover

    async def track(
        self,
        type: str,
        customer: str,
        quantity: Any = 1,
        properties: dict[str, Any] | None = None,
        **kw: Any,
    ) -> str:
        """Buffer an event; returns its id (``InvalidQuantity`` when negative)."""
        return await self._enqueue(event(type, customer, quantity, properties, **kw))

    async def _enqueue(self, body: dict[str, Any]) -> str:
        if len(self._buffer) >= self.buffer_size:
            if self.on_overflow == "raise":
                raise BufferFull(f"{self.buffer_size} events wait to be sent")
            await self.flush()
        self._buffer.append(body)
        if len(self._buffer) >= self.batch_size:
            await self.flush()
        elif self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later())
        return str(body["id"])

    async def _later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        """Send every buffered event (retried until the server has them)."""
        async with self._sending:
            while self._buffer:
                batch, self._buffer = (
                    self._buffer[: self.batch_size],
                    self._buffer[self.batch_size :],
                )
                try:
                    outcome = await self.request(
                        "POST", "/v1/events", json={"events": batch}, retry=True
                    )
                except MeterlineError:
                    self._buffer[:0] = batch  # kept for the next flush, never dropped
                    raise
                self._note_outcome(batch, outcome)

    async def meter(self, feature: str) -> Meter | None:
        """The meter of ``feature`` (read once per client), or None when it has none."""
        cached = self._meters.get(feature)
        if cached is not None and (cached[0] is not None or time.monotonic() < cached[1]):
            return cached[0]
        try:
            found: Meter | None = Meter.of(await self.get(f"/v1/meters/{feature}"))
        except NotFoundError:
            found = None
        self._meters[feature] = (found, time.monotonic() + NO_METER_SECONDS)
        return found

    async def track_feature(
        self,
        feature: str,
        customer: str,
        quantity: Any = 1,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """``Client.track_feature``, awaited."""
        spec = await self.meter(feature)
        if spec is None:
            raise no_meter(feature)
        return await self._enqueue(spec.usage_event(customer, quantity, properties))

    async def check(
        self,
        customer: str,
        feature: str,
        quantity: Any = 1,
        *,
        consume: bool = False,
        id: str | None = None,
        subject: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> CheckResult:
        body = check_body(customer, feature, quantity, consume, id, subject, properties)
        return CheckResult.of(await self.request("POST", "/v1/check", json=body, retry=True))

    async def consume(
        self, customer: str, feature: str, quantity: Any = 1, **kw: Any
    ) -> CheckResult:
        return denied(await self.check(customer, feature, quantity, consume=True, **kw))

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params or None, retry=True)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("POST", path, json=body)

    async def usage(self, customer: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.get(f"/v1/customers/{customer}/usage")
        return found

    async def entitlements(self, customer: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.get(f"/v1/customers/{customer}/entitlements")
        return found

    async def credits(self, customer: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.get(f"/v1/customers/{customer}/credits")
        return found

    async def reserve(
        self, customer: str, feature: str, quantity: Any, ttl_seconds: int = 300, **kw: Any
    ) -> dict[str, Any]:
        body = hold_body(customer, feature, quantity, ttl_seconds, **kw)
        found: dict[str, Any] = await self.post("/v1/reservations", body)
        return found

    async def settle(self, reservation_id: str, quantity: Any) -> dict[str, Any]:
        path = f"/v1/reservations/{reservation_id}/settle"
        found: dict[str, Any] = await self.request(
            "POST", path, json={"quantity": valid_quantity(quantity)}, retry=True
        )
        return found

    async def release(self, reservation_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.post(f"/v1/reservations/{reservation_id}/release", {})
        return found

    def track_usage(
        self,
        feature: str,
        *,
        customer: str | Callable[..., str],
        quantity: Any = 1,
        properties: Any = None,
    ) -> Callable[[F], F]:
        """``Client.track_usage`` for ``async def`` functions (decorating a plain ``def``
        raises ``TypeError``: its usage would need a running loop to be sent)."""

        async def arecord(who: Any, amount: Any, props: Any) -> None:
            try:
                await self.track_feature(feature, who, amount, props)
            except MeterlineError as exc:
                self._reject({"feature": feature, "customer": who, "quantity": amount}, exc)

        return usage_decorator(None, arecord, customer, quantity, properties)

    async def aclose(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
