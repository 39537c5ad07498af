"""``Client``: Meterline over HTTP for threads and processes.

``track`` never sends on the caller's thread: events go into a bounded buffer and a
background sender posts them in batches (``batch_size`` events, or whatever is there
every ``flush_interval`` seconds). Each event gets its id on the client, so a batch
retried after a timeout or a server restart is counted once (the server answers the
repeats as duplicates). Network errors, 5xx and 429 are retried with exponential
backoff (honouring ``Retry-After``) for as long as the client lives; a full buffer
blocks ``track`` or raises ``BufferFull`` (``on_overflow``), never drops; events the
server refuses are logged and kept in ``client.rejected``. ``flush()`` waits for the
buffer to be sent, ``close()`` flushes and stops, and a client still open at interpreter
exit is flushed then. After ``os.fork()`` the child starts with an empty buffer and its
own sender.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
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
    log,
    no_meter,
    retry_after,
    usage_decorator,
)
from meterline_client._core import (
    quantity as valid_quantity,
)
from meterline_client.errors import BufferFull, ConnectionFailed, MeterlineError, NotFoundError

_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()
# Put in the buffer by ``close`` so that the sender stops at once instead of at the end of
# its ``flush_interval`` wait (compared by identity; never sent).
_WAKE: dict[str, Any] = {}


def _after_fork() -> None:
    for client in list(_LIVE):
        client._forked()


def _at_exit() -> None:
    for client in list(_LIVE):
        client.close(timeout=5)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)


class Client(Options):
    """Meterline over HTTP, for threads and processes (see the module's docstring).

    ``api_key`` is an API key (``ml_…``) or a customer token (``mlct_…``); ``timeout``
    bounds each request; reads, consumes and events are retried ``max_retries`` times;
    ``batch_size``, ``flush_interval``, ``buffer_size`` and ``on_overflow`` shape ``track``.
    """

    def __init__(self, api_key: str, base_url: str = "http://127.0.0.1:8000", **options: Any):
        super().__init__(api_key, base_url, **options)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers(api_key), timeout=self.timeout
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
            base_url=self.base_url, headers=headers(self._api_key), timeout=self.timeout
        )
        self._start_buffer()

    # -- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, retry: bool = False, **kw: Any) -> Any:
        """One API call; with ``retry`` (safe repeats: reads, events with ids, consumes
        with ids) network errors, 5xx and 429 are retried ``max_retries`` times."""
        attempts = self.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            wait = None
            try:
                response = self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise ConnectionFailed(f"{self.base_url}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt + 1 == attempts:
                    return answer(response)
                wait = retry_after(response)
            time.sleep(backoff(attempt, wait))
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
        """Queue an event for the background sender; returns its id. A negative
        quantity raises ``InvalidQuantity`` (nothing is queued)."""
        return self._enqueue(event(type, customer, quantity, properties, id, subject, timestamp))

    def _enqueue(self, body: dict[str, Any]) -> str:
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
        found: dict[str, Any] = self.request("POST", "/v1/events", json=body, retry=True)
        return found

    def meter(self, feature: str) -> Meter | None:
        """The meter of ``feature`` (its definition, read once per client; an ``ingest``
        key may read it), or None when the feature has none."""
        cached = self._meters.get(feature)
        if cached is not None and (cached[0] is not None or time.monotonic() < cached[1]):
            return cached[0]
        try:
            found: Meter | None = Meter.of(self.get(f"/v1/meters/{feature}"))
        except NotFoundError:
            found = None
        self._meters[feature] = (found, time.monotonic() + NO_METER_SECONDS)
        return found

    def track_feature(
        self,
        feature: str,
        customer: str,
        quantity: Any = 1,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """Queue ``quantity`` of ``feature``'s usage as the event its meter counts (the
        meter's ``event_type``; the amount in its ``value_property`` when it has one).
        Raises ``NotCounted`` (``error_code`` ``not_counted``) when no meter would count it."""
        spec = self.meter(feature)
        if spec is None:
            raise no_meter(feature)
        return self._enqueue(spec.usage_event(customer, quantity, properties))

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
        body = check_body(customer, feature, quantity, consume, id, subject, properties)
        return CheckResult.of(self.request("POST", "/v1/check", json=body, retry=True))

    def consume(self, customer: str, feature: str, quantity: Any = 1, **kw: Any) -> CheckResult:
        """Check and record at once; raises ``LimitExceeded`` or ``InsufficientCredits``."""
        return denied(self.check(customer, feature, quantity, consume=True, **kw))

    def reserve(
        self, customer: str, feature: str, quantity: Any, ttl_seconds: int = 300, **kw: Any
    ) -> dict[str, Any]:
        body = hold_body(customer, feature, quantity, ttl_seconds, **kw)
        found: dict[str, Any] = self.request("POST", "/v1/reservations", json=body)
        return found

    def settle(self, reservation_id: str, quantity: Any) -> dict[str, Any]:
        path = f"/v1/reservations/{reservation_id}/settle"
        found: dict[str, Any] = self.request(
            "POST", path, json={"quantity": valid_quantity(quantity)}, retry=True
        )
        return found

    def release(self, reservation_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.request(
            "POST", f"/v1/reservations/{reservation_id}/release", json={}
        )
        return found

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
        body = {"amount": valid_quantity(amount, "amount"), **fields}
        found: dict[str, Any] = self.post(f"/v1/customers/{customer}/credits/grants", body)
        return found

    # -- the decorator ---------------------------------------------------------------------

    def track_usage(
        self,
        feature: str,
        *,
        customer: str | Callable[..., str],
        quantity: Any = 1,
        properties: Any = None,
    ) -> Callable[[F], F]:
        """Record ``quantity`` of ``feature`` through its meter each time the decorated
        function (``def`` or ``async def``) returns without raising. ``customer``,
        ``quantity`` and ``properties`` may be callables taking the function's arguments
        (and ``result=`` when they accept it). Usage no meter would count is logged and
        kept in ``rejected``; the decorated call returns normally all the same."""

        def record(who: Any, amount: Any, props: Any) -> None:
            try:
                self.track_feature(feature, who, amount, props)
            except MeterlineError as exc:
                self._reject({"feature": feature, "customer": who, "quantity": amount}, exc)

        async def arecord(who: Any, amount: Any, props: Any) -> None:
            # The meter may have to be read, and a full buffer blocks: off the event loop.
            await asyncio.to_thread(record, who, amount, props)

        return usage_decorator(record, arecord, customer, quantity, properties)

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
                item = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            batch: list[dict[str, Any]] = []
            stop = False
            while True:
                if item is _WAKE:  # from close(): stop once this batch is sent
                    self._queue.task_done()
                    stop = stop or self._closing.is_set()
                else:
                    batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._deliver(batch)
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send until the server has the batch: retried with backoff on network errors,
        5xx and 429 for as long as the client is open (repeats are duplicates)."""
        attempt = 0
        while True:
            wait = None
            try:
                response = self._http.post("/v1/events", json={"events": batch})
            except httpx.TransportError as exc:
                log.warning("meterline: %d events not sent yet (%s); retrying", len(batch), exc)
            else:
                if response.status_code == 200:
                    self._note_outcome(batch, response.json())
                    return
                if response.status_code not in RETRY_STATUSES:
                    self._refused(batch, response)
                    return
                wait = retry_after(response)
                log.warning(
                    "meterline: %d events answered %d; retrying", len(batch), response.status_code
                )
            if self._closing.is_set() and attempt >= self.max_retries:
                log.error("meterline: %d events could not be sent before close", len(batch))
                self.rejected.extend({"event": e, "code": "not_sent"} for e in batch)
                return
            time.sleep(backoff(attempt, wait))
            attempt += 1

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
            if self._sender.is_alive():  # (a second close finds it stopped)
                with contextlib.suppress(queue.Full):  # full: the sender is busy, not waiting
                    self._queue.put_nowait(_WAKE)
            self._sender.join(timeout=self.flush_interval + 1)
        self._http.close()
        _LIVE.discard(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
