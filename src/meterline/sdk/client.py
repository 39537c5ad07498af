"""The Python SDK (SPEC §7): ``Client`` and ``AsyncClient`` over the HTTP API.

``track`` never sends on the caller's thread: events go into a bounded buffer and a
background sender posts them in batches (``batch_size`` events, or whatever is there
every ``flush_interval`` seconds). Each event gets its id on the client, so a batch
retried after a timeout or a server restart is counted once (the server answers the
repeats as duplicates). Network errors, 5xx and 429 are retried with exponential
backoff for as long as the client lives; a full buffer blocks ``track`` or raises
``BufferFull`` (``on_overflow``), never drops; events the server refuses are logged and
kept in ``client.rejected``. ``flush()`` waits for the buffer to be sent, ``close()``
flushes and stops, and a client still open at interpreter exit is flushed then. After
``os.fork()`` the child starts with an empty buffer and its own sender.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import logging
import os
import queue
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import httpx

from meterline import __version__
from meterline.sdk.errors import (
    BufferFull,
    ConnectionFailed,
    InsufficientCredits,
    LimitExceeded,
    from_response,
)

log = logging.getLogger("meterline.sdk")
F = TypeVar("F", bound=Callable[..., Any])
Overflow = Literal["block", "raise"]
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_BACKOFF = 30.0


@dataclass
class CheckResult:
    """A check's answer: ``allowed``, ``reason`` (``ok``, ``limit_exceeded``,
    ``insufficient_credits``, …), ``limits``, ``credits`` and, for a consume, ``event_id``."""

    allowed: bool
    reason: str
    feature: str
    limits: list[dict[str, Any]] = field(default_factory=list)
    credits: dict[str, Any] | None = None
    event_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any]) -> CheckResult:
        return cls(
            allowed=body["allowed"],
            reason=body["reason"],
            feature=body.get("feature", ""),
            limits=body.get("limits", []),
            credits=body.get("credits"),
            event_id=body.get("event_id"),
            raw=body,
        )


def _number(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def event(
    type: str,
    customer: str,
    quantity: Any = 1,
    properties: dict[str, Any] | None = None,
    id: str | None = None,
    subject: str | None = None,
    timestamp: datetime | str | None = None,
) -> dict[str, Any]:
    """An event body with a client-made id (``evt_`` + UUID4) and timestamp, so that
    sending it twice counts once."""
    body: dict[str, Any] = {
        "id": id or f"evt_{uuid.uuid4().hex}",
        "type": type,
        "customer": customer,
        "quantity": _number(quantity),
        "timestamp": (timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp)
        or datetime.now().astimezone().isoformat(),
    }
    if properties:
        body["properties"] = properties
    if subject is not None:
        body["subject"] = subject
    return body


def _check_body(
    customer: str,
    feature: str,
    quantity: Any,
    consume: bool,
    id: str | None,
    subject: str | None,
    properties: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": customer,
        "feature": feature,
        "quantity": _number(quantity),
        "consume": consume,
    }
    if consume:
        body["id"] = id or f"evt_{uuid.uuid4().hex}"  # a retried consume counts once
    if subject is not None:
        body["subject"] = subject
    if properties:
        body["properties"] = properties
    return body


def _denied(result: CheckResult) -> CheckResult:
    """A consume's answer, or its refusal raised."""
    if result.allowed:
        return result
    if result.reason == "insufficient_credits":
        raise InsufficientCredits(f"{result.feature}: not enough credits", result)
    if result.reason == "limit_exceeded":
        raise LimitExceeded(f"{result.feature}: limit exceeded", result)
    raise LimitExceeded(f"{result.feature}: {result.reason}", result)


def _backoff(attempt: int) -> float:
    """Seconds before retry ``attempt``: doubling from 0.25 s, at most 30 s, jittered."""
    ceiling: float = min(MAX_BACKOFF, 0.25 * 2.0**attempt)
    return ceiling * random.uniform(0.5, 1.0)


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"meterline-python/{__version__}"}


def _answer(response: httpx.Response) -> Any:
    if response.status_code == 204:
        return None
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        raise from_response(response.status_code, body)
    return response.json()


def _usage_decorator(
    record: Callable[[str, Any, Any], Any],
    arecord: Callable[[str, Any, Any], Any] | None,
    feature: str,
    customer: str | Callable[..., str],
    quantity: Any,
) -> Callable[[F], F]:
    """Records ``feature`` usage when the decorated call returns without raising."""

    def resolve(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
        if not callable(value):
            return value
        try:
            return value(*args, **kwargs, result=result)
        except TypeError:
            return value(*args, **kwargs)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            if arecord is None:
                raise TypeError("decorate async functions with an AsyncClient's track_usage")
            asynchronous = arecord

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                result = await fn(*args, **kwargs)
                who = resolve(customer, args, kwargs, result)
                await asynchronous(who, resolve(quantity, args, kwargs, result), feature)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            who = resolve(customer, args, kwargs, result)
            record(who, resolve(quantity, args, kwargs, result), feature)
            return result

        return run  # type: ignore[return-value]

    return decorate


# -- the synchronous client -------------------------------------------------------------------

_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork() -> None:
    for client in list(_LIVE):
        client._forked()


def _at_exit() -> None:
    for client in list(_LIVE):
        client.close(timeout=5)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)


class _Options:
    """What both clients are configured with (``Client``'s docstring explains each)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        buffer_size: int = 10_000,
        on_overflow: Overflow = "block",
    ) -> None:
        if on_overflow not in ("block", "raise"):
            raise ValueError("on_overflow is 'block' or 'raise'")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.batch_size = min(batch_size, 10_000)
        self.flush_interval = flush_interval
        self.buffer_size = buffer_size
        self.on_overflow = on_overflow
        self.rejected: list[dict[str, Any]] = []  # events the server refused, with why


class Client(_Options):
    """Meterline over HTTP, for threads and processes (see the module's docstring)."""

    def __init__(self, api_key: str, base_url: str = "http://127.0.0.1:8000", **options: Any):
        super().__init__(api_key, base_url, **options)
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=self.timeout
        )
        self._start_buffer()
        _LIVE.add(self)

    def _start_buffer(self) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=self.buffer_size)
        self._lock = threading.Lock()
        self._sender: threading.Thread | None = None
        self._closing = threading.Event()
        self._pid = os.getpid()

    def _forked(self) -> None:
        """In a child process: the parent's buffer and thread are the parent's."""
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(self._api_key), timeout=self.timeout
        )
        self._start_buffer()

    # -- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, retry: bool = False, **kw: Any) -> Any:
        """One API call; with ``retry`` (safe repeats: reads, events with ids, consumes
        with ids) network errors, 5xx and 429 are retried ``max_retries`` times."""
        attempts = self.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise ConnectionFailed(f"{self.base_url}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt + 1 == attempts:
                    return _answer(response)
            time.sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- usage -----------------------------------------------------------------------------

    def track(
        self,
        type: str,
        customer: str,
        quantity: Any = 1,
        properties: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        subject: str | None = None,
        timestamp: datetime | str | None = None,
    ) -> str:
        """Queue an event for the background sender; returns its id."""
        body = event(type, customer, quantity, properties, id, subject, timestamp)
        if os.getpid() != self._pid:
            self._forked()
        self._ensure_sender()
        try:
            self._queue.put(body, block=self.on_overflow == "block")
        except queue.Full as exc:
            raise BufferFull(f"{self.buffer_size} events wait to be sent") from exc
        return str(body["id"])

    def record(self, type: str, customer: str, quantity: Any = 1, **fields: Any) -> dict[str, Any]:
        """Send one event now (retried safely: it has its id); returns the server's answer."""
        body = event(type, customer, quantity, **fields)
        answer: dict[str, Any] = self.request("POST", "/v1/events", json=body, retry=True)
        return answer

    def check(
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
        body = _check_body(customer, feature, quantity, consume, id, subject, properties)
        return CheckResult.of(self.request("POST", "/v1/check", json=body, retry=True))

    def consume(self, customer: str, feature: str, quantity: Any = 1, **kw: Any) -> CheckResult:
        """Check and record at once; raises ``LimitExceeded`` or ``InsufficientCredits``."""
        return _denied(self.check(customer, feature, quantity, consume=True, **kw))

    def reserve(
        self, customer: str, feature: str, quantity: Any, ttl_seconds: int = 300, **kw: Any
    ) -> dict[str, Any]:
        body = {"customer": customer, "feature": feature, "quantity": _number(quantity)}
        answer: dict[str, Any] = self.request(
            "POST", "/v1/reservations", json={**body, "ttl_seconds": ttl_seconds, **kw}
        )
        return answer

    def settle(self, reservation_id: str, quantity: Any) -> dict[str, Any]:
        path = f"/v1/reservations/{reservation_id}/settle"
        answer: dict[str, Any] = self.request(
            "POST", path, json={"quantity": _number(quantity)}, retry=True
        )
        return answer

    def release(self, reservation_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request(
            "POST", f"/v1/reservations/{reservation_id}/release", json={}
        )
        return answer

    # -- reads and admin -------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None, retry=True)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def usage(self, customer: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/v1/customers/{customer}/usage")
        return found

    def entitlements(self, customer: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/v1/customers/{customer}/entitlements")
        return found

    def credits(self, customer: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/v1/customers/{customer}/credits")
        return found

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.post("/v1/customers", fields)
        return found

    def create_meter(self, **fields: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.post("/v1/meters", fields)
        return found

    def create_plan(self, **fields: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.post("/v1/plans", fields)
        return found

    def subscribe(self, *, customer: str, plan: str, **fields: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.post(
            "/v1/subscriptions", {"customer": customer, "plan": plan, **fields}
        )
        return found

    def grant_credits(self, *, customer: str, amount: Any, **fields: Any) -> dict[str, Any]:
        body = {"amount": _number(amount), **fields}
        found: dict[str, Any] = self.post(f"/v1/customers/{customer}/credits/grants", body)
        return found

    # -- the decorator ---------------------------------------------------------------------

    def track_usage(
        self, feature: str, *, customer: str | Callable[..., str], quantity: Any = 1
    ) -> Callable[[F], F]:
        """Record ``feature`` (an event of that type) each time the decorated function
        returns without raising. ``customer`` and ``quantity`` may be callables taking
        the function's arguments (and ``result=`` when they accept it)."""
        return _usage_decorator(
            lambda who, amount, kind: self.track(kind, who, amount),
            None,
            feature,
            customer,
            quantity,
        )

    # -- the sender ------------------------------------------------------------------------

    def _ensure_sender(self) -> None:
        if self._sender is not None and self._sender.is_alive():
            return
        with self._lock:
            if self._sender is None or not self._sender.is_alive():
                self._closing.clear()
                self._sender = threading.Thread(
                    target=self._send_loop, name="meterline-sender", daemon=True
                )
                self._sender.start()

    def _send_loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._deliver(batch)
            for _ in batch:
                self._queue.task_done()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send until the server has the batch: retried with backoff on network errors,
        5xx and 429 for as long as the client is open (repeats are duplicates)."""
        attempt = 0
        while True:
            try:
                response = self._http.post("/v1/events", json={"events": batch})
            except httpx.TransportError as exc:
                log.warning("meterline: %d events not sent yet (%s); retrying", len(batch), exc)
            else:
                if response.status_code == 200:
                    self._note_rejections(batch, response.json())
                    return
                if response.status_code not in RETRY_STATUSES:
                    self._refused(batch, response)
                    return
                log.warning(
                    "meterline: %d events answered %d; retrying", len(batch), response.status_code
                )
            if self._closing.is_set() and attempt >= self.max_retries:
                log.error("meterline: %d events could not be sent before close", len(batch))
                self.rejected.extend({"event": e, "code": "not_sent"} for e in batch)
                return
            time.sleep(_backoff(attempt))
            attempt += 1

    def _note_rejections(self, batch: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
        for error in outcome.get("errors", []):
            found = {
                "event": batch[error["index"]],
                "code": error["code"],
                "message": error["message"],
            }
            log.error("meterline: event %s refused: %s", found["event"]["id"], error["message"])
            self.rejected.append(found)

    def _refused(self, batch: list[dict[str, Any]], response: httpx.Response) -> None:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text}
        log.error(
            "meterline: %d events refused (%d): %s", len(batch), response.status_code, problem
        )
        self.rejected.extend(
            {"event": e, "code": problem.get("code", str(response.status_code))} for e in batch
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every tracked event is sent (or refused); False on timeout."""
        if self._sender is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left if left is not None else 0.5)
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Send what is buffered (waiting up to ``timeout``), then stop."""
        if os.getpid() == self._pid and self._sender is not None:
            self._closing.set()
            if not self.flush(timeout):
                log.error("meterline: %d events unsent at close", self._queue.unfinished_tasks)
            self._sender.join(timeout=self.flush_interval + 1)
        self._http.close()
        _LIVE.discard(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- the asynchronous client ------------------------------------------------------------------


class AsyncClient(_Options):
    """Meterline over HTTP for asyncio: the same verbs, awaited. ``track`` buffers and a
    task of the running loop sends batches; ``await flush()`` / ``await aclose()``."""

    def __init__(self, api_key: str, base_url: str = "http://127.0.0.1:8000", **options: Any):
        super().__init__(api_key, base_url, **options)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=self.timeout
        )
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()

    async def request(self, method: str, path: str, *, retry: bool = False, **kw: Any) -> Any:
        attempts = self.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = await self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise ConnectionFailed(f"{self.base_url}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt + 1 == attempts:
                    return _answer(response)
            await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def track(
        self,
        type: str,
        customer: str,
        quantity: Any = 1,
        properties: dict[str, Any] | None = None,
        **kw: Any,
    ) -> str:
        if len(self._buffer) >= self.buffer_size:
            if self.on_overflow == "raise":
                raise BufferFull(f"{self.buffer_size} events wait to be sent")
            await self.flush()
        body = event(type, customer, quantity, properties, **kw)
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
                outcome = await self.request(
                    "POST", "/v1/events", json={"events": batch}, retry=True
                )
                for error in outcome.get("errors", []):
                    self.rejected.append({"event": batch[error["index"]], **error})

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
        body = _check_body(customer, feature, quantity, consume, id, subject, properties)
        return CheckResult.of(await self.request("POST", "/v1/check", json=body, retry=True))

    async def consume(
        self, customer: str, feature: str, quantity: Any = 1, **kw: Any
    ) -> CheckResult:
        return _denied(await self.check(customer, feature, quantity, consume=True, **kw))

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
        body = {"customer": customer, "feature": feature, "quantity": _number(quantity)}
        found: dict[str, Any] = await self.post(
            "/v1/reservations", {**body, "ttl_seconds": ttl_seconds, **kw}
        )
        return found

    async def settle(self, reservation_id: str, quantity: Any) -> dict[str, Any]:
        path = f"/v1/reservations/{reservation_id}/settle"
        found: dict[str, Any] = await self.request(
            "POST", path, json={"quantity": _number(quantity)}, retry=True
        )
        return found

    async def release(self, reservation_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.post(f"/v1/reservations/{reservation_id}/release", {})
        return found

    def track_usage(
        self, feature: str, *, customer: str | Callable[..., str], quantity: Any = 1
    ) -> Callable[[F], F]:
        async def record(who: Any, amount: Any, kind: str) -> None:
            await self.track(kind, who, amount)

        def refuse(*_: Any) -> None:
            raise TypeError("an AsyncClient decorates async functions only")

        return _usage_decorator(refuse, record, feature, customer, quantity)

    async def aclose(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
