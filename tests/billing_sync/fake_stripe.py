"""A fake Stripe for the tests: real HTTP servers on 127.0.0.1 (two ports, like Stripe's
``api`` and ``meter_events`` bases), stateful and strict, driven by the official
``stripe`` package exactly as Meterline drives real Stripe (nothing here reaches Stripe).

What it checks, as live Stripe does:
- Authentication: ``Authorization: Bearer <secret key>`` naming a key it knows (401
  otherwise); the stream takes only an unexpired meter event session token (401
  ``temporary_session_expired`` once its time is up).
- Bodies as the ``stripe`` package sends them: v1 form-encoded
  (``application/x-www-form-urlencoded``, ``payload[value]=…``, ``metadata[k]=…``), v2
  JSON. Parameter names are checked against the installed package's own parameter types
  (generated from Stripe's OpenAPI description): an unknown one is 400
  ``parameter_unknown``, a missing required one 400 ``parameter_missing``, in Stripe's
  error shape ``{"error": {"type", "code", "message", "param"}}``.
- Meter events (v1 ``/v1/billing/meter_events``, v2 ``/v2/billing/meter_event_stream``
  with at most 100 events a request): whole-number values; timestamps at most 35 days old
  and at most 5 minutes ahead (of the fake's clock); an ``identifier`` seen in the last 24
  hours is refused on v1 as live Stripe does (400 "An event already exists with identifier
  …", ``Stripe-Should-Retry: false``) and dropped silently on the stream (validated
  asynchronously there). Events for an unknown ``event_name`` or customer, and stream
  events with bad values, are accepted and recorded in ``errors`` (Stripe validates them
  asynchronously and reports them in ``v1.billing.meter.error_report_triggered``).
- Meter event adjustments cancel one event by identifier, only within 24 hours of
  receiving it. Event summaries (per meter, customer and hour or whole range) need
  minute-aligned (hour-aligned for hourly) ranges.
- Customers, meters, invoice items and invoices (create, finalize, void, retrieve,
  list): amounts are integers in the minor unit; a finalized invoice's total is the sum
  of its items; only an open invoice can be voided.
- Idempotency: a POST's ``Idempotency-Key`` replays the first answer for 24 hours
  (``Idempotent-Replayed: true``); the same key with other parameters is 400
  ``idempotency_error``.

Faults to inject (``fail``): an error status before any work (429 with ``Retry-After``,
500, …), a dropped connection before or after the work, a slow answer after the work.
Counters the tests read: ``presented`` (how often each identifier was sent),
``accepted`` (how often it was taken: never more than once), ``requests``, ``invoices``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import stripe
from stripe._request_options import RequestOptions
from stripe.params import _customer_create_params as customer_params
from stripe.params import _invoice_create_params as invoice_params
from stripe.params import _invoice_finalize_invoice_params as finalize_params
from stripe.params import _invoice_item_create_params as item_params
from stripe.params import _invoice_void_invoice_params as void_params
from stripe.params.billing import _meter_create_params as meter_params
from stripe.params.billing import _meter_event_adjustment_create_params as adjustment_params
from stripe.params.billing import _meter_event_create_params as event_params
from stripe.params.billing import _meter_event_summary_list_params as summary_params
from stripe.params.billing import _meter_list_params as meter_list_params
from stripe.params.v2.billing import _meter_event_stream_create_params as stream_params

MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)
DEDUPE = timedelta(hours=24)
CANCEL_WITHIN = timedelta(hours=24)
_OPTIONS = set(RequestOptions.__annotations__)


def _spec(typed: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(allowed, required) parameter names of one of the package's parameter types."""
    allowed = frozenset(set(typed.__annotations__) - _OPTIONS)
    return allowed, frozenset(typed.__required_keys__ - _OPTIONS)


SPECS = {
    "meter_event": _spec(event_params.MeterEventCreateParams),
    "adjustment": _spec(adjustment_params.MeterEventAdjustmentCreateParams),
    "summaries": _spec(summary_params.MeterEventSummaryListParams),
    "meter": _spec(meter_params.MeterCreateParams),
    "meters": _spec(meter_list_params.MeterListParams),
    "customer": _spec(customer_params.CustomerCreateParams),
    "invoice": _spec(invoice_params.InvoiceCreateParams),
    "item": _spec(item_params.InvoiceItemCreateParams),
    "finalize": _spec(finalize_params.InvoiceFinalizeInvoiceParams),
    "void": _spec(void_params.InvoiceVoidInvoiceParams),
    "stream": _spec(stream_params.MeterEventStreamCreateParams),
    "stream_event": _spec(stream_params.MeterEventStreamCreateParamsEvent),
}
WHOLE = re.compile(r"^-?\d+$")


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message, "code": code, "param": param}}
        self.headers = headers or {}


@dataclass
class Fault:
    path: str  # a path prefix
    kind: str  # "status", "drop_before", "drop_after", "slow"
    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0
    times: int = 1


@dataclass
class MeterEvent:
    identifier: str
    event_name: str
    customer: str
    value: int
    timestamp: datetime
    received_at: datetime
    via: str
    cancelled: bool = False


@dataclass
class State:
    keys: set[str]
    now: Callable[[], datetime]
    session_ttl: timedelta = timedelta(minutes=15)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    meters: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[MeterEvent] = field(default_factory=list)
    by_identifier: dict[str, MeterEvent] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, datetime] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    core_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, datetime, int, bytes]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    presented: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    sessions_created: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self.ids):08d}{secrets.token_hex(3)}"


class FakeStripe:
    """Two HTTP servers sharing one state; ``api_base`` and ``meter_events_base`` are
    what ``METERLINE_STRIPE_API_BASE`` / ``METERLINE_STRIPE_METER_EVENTS_BASE`` name."""

    def __init__(self, now: Callable[[], datetime] | None = None, key: str | None = None) -> None:
        self.secret_key = key or "sk_test_" + secrets.token_hex(12)
        self.state = State({self.secret_key}, now or (lambda: datetime.now(UTC)))
        self._api = _serve(self.state, "api")
        self._events = _serve(self.state, "meter_events")
        self.api_base = f"http://127.0.0.1:{self._api.server_address[1]}"
        self.meter_events_base = f"http://127.0.0.1:{self._events.server_address[1]}"

    def close(self) -> None:
        for server in (self._api, self._events):
            server.shutdown()
            server.server_close()

    def client(self) -> stripe.StripeClient:
        """The official client pointed at this fake (for setting it up in tests)."""
        return stripe.StripeClient(
            self.secret_key,
            base_addresses={"api": self.api_base, "meter_events": self.meter_events_base},
            max_network_retries=0,
        )

    # -- setting up and breaking ---------------------------------------------------------

    def customer(self, name: str = "") -> str:
        return str(self.client().v1.customers.create({"name": name or "customer"}).id)

    def meter(self, event_name: str) -> str:
        params: Any = {
            "display_name": event_name,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
        }
        return str(self.client().v1.billing.meters.create(params).id)

    def fail(self, path: str, kind: str = "status", **fields: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(path, kind, **fields))

    def expire_sessions(self) -> None:
        with self.state.lock:
            for token in self.state.sessions:
                self.state.sessions[token] = self.state.now() - timedelta(seconds=1)

    def lose(self, identifier: str) -> None:
        """Plant a difference: Stripe forgets an event it took."""
        with self.state.lock:
            event = self.state.by_identifier[identifier]
            self.state.events.remove(event)

    # -- what the tests read -------------------------------------------------------------

    def total(self, customer: str, event_name: str) -> int:
        with self.state.lock:
            return sum(
                e.value
                for e in self.state.events
                if e.customer == customer and e.event_name == event_name and not e.cancelled
            )

    def live_events(self) -> list[MeterEvent]:
        with self.state.lock:
            return [e for e in self.state.events if not e.cancelled]

    @property
    def accepted(self) -> Counter[str]:
        return self.state.accepted

    @property
    def presented(self) -> Counter[str]:
        return self.state.presented

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.state.errors

    @property
    def invoices(self) -> dict[str, dict[str, Any]]:
        return self.state.invoices

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.state.requests]

    # -- events Stripe would send --------------------------------------------------------

    def snapshot_event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A v1 snapshot event (``invoice.paid``, ``invoice.payment_failed``)."""
        return {
            "id": self.state.new_id("evt"),
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(self.state.now().timestamp()),
            "type": kind,
            "livemode": False,
            "data": {"object": obj},
        }

    def error_report(self, event_name: str, identifiers: list[str], message: str) -> dict[str, Any]:
        """A ``v1.billing.meter.error_report_triggered`` thin event; the full event is
        kept for ``GET /v2/core/events/{id}``."""
        meter = next(m for m in self.state.meters.values() if m["event_name"] == event_name)
        now = self.state.now()
        thin = {
            "id": self.state.new_id("evt"),
            "object": "v2.core.event",
            "type": "v1.billing.meter.error_report_triggered",
            "created": _iso(now),
            "livemode": False,
            "context": None,
            "related_object": {
                "id": meter["id"],
                "type": "billing.meter",
                "url": f"/v1/billing/meters/{meter['id']}",
            },
        }
        full = {
            **thin,
            "reason": None,
            "data": {
                "developer_message_summary": f"There are {len(identifiers)} invalid events",
                "reason": {
                    "error_count": len(identifiers),
                    "error_types": [
                        {
                            "code": "meter_event_customer_not_found",
                            "error_count": len(identifiers),
                            "sample_errors": [
                                {"error_message": message, "request": {"identifier": i}}
                                for i in identifiers
                            ],
                        }
                    ],
                },
                "validation_start": _iso(now - timedelta(minutes=1)),
                "validation_end": _iso(now),
            },
        }
        with self.state.lock:
            self.state.core_events[thin["id"]] = full
        return thin


def signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its ``Stripe-Signature`` header, signed by the ``stripe``
    package's own helper."""
    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    return body.encode(), {"Stripe-Signature": header, "content-type": "application/json"}


def post_webhook(url: str, payload: dict[str, Any], secret: str) -> httpx2.Response:
    body, headers = signed(payload, secret)
    return httpx2.post(url, content=body, headers=headers, timeout=10)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- the HTTP side ---------------------------------------------------------------------------


def _serve(state: State, base: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            fault = _take_fault(state, parts.path)
            if fault is not None and fault.kind == "drop_before":
                self._drop()
                return
            if fault is not None and fault.kind == "status":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                error = StripeError(fault.status, "Injected failure.", type="api_error")
                if fault.status == 429:
                    error = StripeError(429, "Too many requests.", code="rate_limit")
                self._answer(method, parts.path, error.status, error.body, headers)
                return
            status, answer, headers = _respond(state, base, method, parts, self.headers, body)
            if fault is not None and fault.kind == "drop_after":
                self._drop()
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            self._answer(method, parts.path, status, answer, headers)

        def _answer(
            self, method: str, path: str, status: int, answer: Any, headers: dict[str, str]
        ) -> None:
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            with state.lock:
                state.requests.append((method, path, status))
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_" + secrets.token_hex(6))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                self.close_connection = True

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):  # already closed by the client
                self.connection.shutdown(socket.SHUT_RDWR)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False  # a slow answer still sleeping never holds up close()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _take_fault(state: State, path: str) -> Fault | None:
    with state.lock:
        for fault in state.faults:
            if path.startswith(fault.path):
                fault.times -= 1
                if fault.times <= 0:
                    state.faults.remove(fault)
                return fault
    return None


def _respond(
    state: State, base: str, method: str, parts: Any, headers: Any, body: bytes
) -> tuple[int, Any, dict[str, str]]:
    try:
        with state.lock:
            return _route(state, base, method, parts, headers, body)
    except StripeError as error:
        return error.status, error.body, error.headers


def _route(
    state: State, base: str, method: str, parts: Any, headers: Any, body: bytes
) -> tuple[int, Any, dict[str, str]]:
    path: str = parts.path
    token = (headers.get("authorization") or "").removeprefix("Bearer ").strip()
    if base == "meter_events":
        if (method, path) != ("POST", "/v2/billing/meter_event_stream"):
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        return 200, _stream(state, token, headers, body), {}
    if token not in state.keys:
        raise StripeError(401, f"Invalid API Key provided: {token[:8]}****")
    if not headers.get("stripe-version"):
        raise StripeError(400, "The Stripe-Version header is required.")
    if path.startswith("/v2/"):
        return _v2(state, method, path, headers, body)
    params = _form(parts.query if method == "GET" else body.decode(), headers, method)
    key = headers.get("idempotency-key") if method == "POST" else None
    if key:
        fingerprint = f"{path}?{json.dumps(params, sort_keys=True)}"
        seen = state.idempotency.get(key)
        if seen is not None and state.now() - seen[1] < DEDUPE:
            if seen[0] != fingerprint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    type="idempotency_error",
                )
            return seen[2], seen[3], {"Idempotent-Replayed": "true"}
    try:
        status, answer = 200, _v1(state, method, path, params)
        out_headers: dict[str, str] = {}
    except StripeError as error:
        status, answer, out_headers = error.status, error.body, error.headers
    if key and status < 500:
        state.idempotency[key] = (
            f"{path}?{json.dumps(params, sort_keys=True)}",
            state.now(),
            status,
            json.dumps(answer).encode(),
        )
    return status, answer, out_headers


def _form(text: str, headers: Any, method: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b]=1``, ``a[0]=x``) back into nested values."""
    if (
        method == "POST"
        and text
        and not (headers.get("content-type") or "").startswith("application/x-www-form-urlencoded")
    ):
        raise StripeError(400, "Send v1 requests form-encoded.")
    found: dict[str, Any] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        keys = re.findall(r"[^\[\]]+", name)
        node = found
        for part in keys[:-1]:
            node = node.setdefault(part, {})
        node[keys[-1]] = value
    return {k: _lists(v) for k, v in found.items()}


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        if value and all(k.isdigit() for k in value):
            return [_lists(value[k]) for k in sorted(value, key=int)]
        return {k: _lists(v) for k, v in value.items()}
    return value


def _check(params: dict[str, Any], spec: str) -> None:
    allowed, required = SPECS[spec]
    for name in params:
        if name not in allowed:
            raise StripeError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )
    for name in sorted(required):
        if name not in params or params[name] in ("", None):
            raise StripeError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )


def _integer(params: dict[str, Any], name: str) -> int:
    value = params[name]
    if isinstance(value, int) or (isinstance(value, str) and WHOLE.match(value)):
        return int(value)
    raise StripeError(
        400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
    )


def _v1(state: State, method: str, path: str, params: dict[str, Any]) -> Any:
    segments = path.strip("/").split("/")
    match method, segments:
        case "POST", ["v1", "billing", "meter_events"]:
            _check(params, "meter_event")
            return _meter_event(state, params)
        case "POST", ["v1", "billing", "meter_event_adjustments"]:
            _check(params, "adjustment")
            return _adjust(state, params)
        case "POST", ["v1", "billing", "meters"]:
            _check(params, "meter")
            return _create_meter(state, params)
        case "GET", ["v1", "billing", "meters"]:
            _check(params, "meters")
            return _list(list(state.meters.values()), "/v1/billing/meters")
        case "GET", ["v1", "billing", "meters", meter_id, "event_summaries"]:
            _check(params, "summaries")
            return _summaries(state, meter_id, params)
        case "POST", ["v1", "customers"]:
            _check(params, "customer")
            customer = {
                "id": state.new_id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            }
            state.customers[customer["id"]] = customer
            return customer
        case "POST", ["v1", "invoices"]:
            _check(params, "invoice")
            return _create_invoice(state, params)
        case "GET", ["v1", "invoices", invoice_id]:
            return _invoice(state, invoice_id)
        case "POST", ["v1", "invoices", invoice_id, "finalize"]:
            _check(params, "finalize")
            return _finalize(state, invoice_id)
        case "POST", ["v1", "invoices", invoice_id, "void"]:
            _check(params, "void")
            invoice = _invoice(state, invoice_id)
            if invoice["status"] != "open":
                raise StripeError(
                    400, f"You can only void an open invoice; this one is {invoice['status']}."
                )
            invoice["status"] = "void"
            return invoice
        case "POST", ["v1", "invoiceitems"]:
            _check(params, "item")
            return _create_item(state, params)
    raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")


def _timestamp(state: State, moment: datetime, param: str) -> None:
    now = state.now()
    if moment < now - MAX_AGE:
        raise StripeError(
            400,
            "Timestamp must be within the past 35 calendar days.",
            code="timestamp_too_far_in_past",
            param=param,
        )
    if moment > now + MAX_AHEAD:
        raise StripeError(
            400,
            "Timestamp must not be more than 5 minutes in the future.",
            code="timestamp_in_future",
            param=param,
        )


def _meter_event(state: State, params: dict[str, Any]) -> dict[str, Any]:
    payload = params["payload"]
    if not isinstance(payload, dict):
        raise StripeError(400, "Invalid object", param="payload")
    if not WHOLE.match(str(payload.get("value", ""))):
        raise StripeError(
            400,
            "The value must be a whole number.",
            code="parameter_invalid_integer",
            param="payload[value]",
        )
    stamp = state.now()
    if "timestamp" in params:
        stamp = datetime.fromtimestamp(_integer(params, "timestamp"), UTC)
        _timestamp(state, stamp, "timestamp")
    identifier = params.get("identifier") or state.new_id("idmp")
    state.presented[identifier] += 1
    seen = state.by_identifier.get(identifier)
    if seen is not None and state.now() - seen.received_at < DEDUPE:
        raise StripeError(
            400,
            f"An event already exists with identifier {identifier}.",
            headers={"Stripe-Should-Retry": "false"},
        )
    _take(state, params["event_name"], identifier, payload, stamp, "v1")
    return {
        "object": "billing.meter_event",
        "created": int(state.now().timestamp()),
        "event_name": params["event_name"],
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": int(stamp.timestamp()),
    }


def _take(
    state: State,
    event_name: str,
    identifier: str,
    payload: dict[str, Any],
    stamp: datetime,
    via: str,
) -> None:
    """Store an accepted event; what Stripe validates later goes to ``errors``."""
    customer = payload.get("stripe_customer_id", "")
    problem = None
    if not any(m["event_name"] == event_name for m in state.meters.values()):
        problem = "no_meter"
    elif customer not in state.customers:
        problem = "meter_event_customer_not_found"
    if problem:
        state.errors.append({"identifier": identifier, "code": problem})
        return
    state.accepted[identifier] += 1
    event = MeterEvent(
        identifier, event_name, customer, int(payload["value"]), stamp, state.now(), via
    )
    state.events.append(event)
    state.by_identifier[identifier] = event


def _adjust(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if params["type"] != "cancel":
        raise StripeError(400, "Invalid type: must be cancel", param="type")
    identifier = (params.get("cancel") or {}).get("identifier")
    if not identifier:
        raise StripeError(400, "Missing required param: cancel[identifier].", param="cancel")
    event = state.by_identifier.get(identifier)
    if event is None or event.event_name != params["event_name"]:
        raise StripeError(404, f"No meter event with identifier {identifier}.")
    if state.now() - event.received_at >= CANCEL_WITHIN:
        raise StripeError(400, "Meter events can only be cancelled within 24 hours.")
    event.cancelled = True
    return {
        "id": state.new_id("mtr_adj"),
        "object": "billing.meter_event_adjustment",
        "event_name": params["event_name"],
        "livemode": False,
        "status": "pending",
        "type": "cancel",
        "cancel": {"identifier": identifier},
    }


def _create_meter(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if any(m["event_name"] == params["event_name"] for m in state.meters.values()):
        raise StripeError(400, "A meter with this event_name already exists.")
    meter = {
        "id": state.new_id("mtr"),
        "object": "billing.meter",
        "display_name": params["display_name"],
        "event_name": params["event_name"],
        "status": "active",
        "default_aggregation": params["default_aggregation"],
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"},
        "livemode": False,
    }
    state.meters[meter["id"]] = meter
    return meter


def _list(items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": False, "url": url}


def _summaries(state: State, meter_id: str, params: dict[str, Any]) -> dict[str, Any]:
    meter = state.meters.get(meter_id)
    if meter is None:
        raise StripeError(404, f"No such billing meter: '{meter_id}'")
    start = _integer(params, "start_time")
    end = _integer(params, "end_time")
    window = params.get("value_grouping_window")
    step = 3600 if window == "hour" else 86400 if window == "day" else end - start
    if start % 60 or end % 60 or (window and (start % step or end % step)) or end <= start:
        raise StripeError(400, "start_time and end_time must align with the grouping window.")
    rows = []
    for low in range(start, end, step):
        value = sum(
            e.value
            for e in state.events
            if e.event_name == meter["event_name"]
            and e.customer == params["customer"]
            and not e.cancelled
            and low <= e.timestamp.timestamp() < low + step
        )
        rows.append(
            {
                "id": f"mtrusg_{meter_id}_{low}",
                "object": "billing.meter_event_summary",
                "aggregated_value": float(value),
                "start_time": low,
                "end_time": low + step,
                "livemode": False,
                "meter": meter_id,
            }
        )
    rows.reverse()  # newest first, as Stripe lists them
    if "starting_after" in params:
        position = next(i for i, r in enumerate(rows) if r["id"] == params["starting_after"])
        rows = rows[position + 1 :]
    limit = int(params.get("limit", 10))
    page = _list(rows[:limit], f"/v1/billing/meters/{meter_id}/event_summaries")
    page["has_more"] = len(rows) > limit
    return page


def _create_invoice(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if params["customer"] not in state.customers:
        raise StripeError(404, f"No such customer: '{params['customer']}'", param="customer")
    invoice = {
        "id": state.new_id("in"),
        "object": "invoice",
        "customer": params["customer"],
        "currency": params.get("currency", "usd"),
        "description": params.get("description"),
        "metadata": params.get("metadata", {}),
        "status": "draft",
        "auto_advance": params.get("auto_advance") == "true",
        "collection_method": params.get("collection_method", "charge_automatically"),
        "total": 0,
        "amount_due": 0,
        "number": None,
        "lines": _list([], "/v1/invoices/lines"),
    }
    state.invoices[invoice["id"]] = invoice
    return invoice


def _invoice(state: State, invoice_id: str) -> dict[str, Any]:
    invoice = state.invoices.get(invoice_id)
    if invoice is None:
        raise StripeError(404, f"No such invoice: '{invoice_id}'")
    return invoice


def _create_item(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if params["customer"] not in state.customers:
        raise StripeError(404, f"No such customer: '{params['customer']}'", param="customer")
    if "amount" in params and "currency" not in params:
        raise StripeError(400, "Missing required param: currency.", param="currency")
    item = {
        "id": state.new_id("ii"),
        "object": "invoiceitem",
        "customer": params["customer"],
        "amount": _integer(params, "amount"),
        "currency": params["currency"],
        "description": params.get("description"),
        "metadata": params.get("metadata", {}),
        "invoice": params.get("invoice"),
        "period": {k: int(v) for k, v in (params.get("period") or {}).items()},
    }
    if item["invoice"]:
        invoice = _invoice(state, item["invoice"])
        if invoice["status"] != "draft":
            raise StripeError(400, "Invoice items can only be added to a draft invoice.")
        if invoice["currency"] != item["currency"]:
            raise StripeError(400, "The invoice item's currency differs from the invoice's.")
        invoice["lines"]["data"].append(item)
    state.items[item["id"]] = item
    return item


def _finalize(state: State, invoice_id: str) -> dict[str, Any]:
    invoice = _invoice(state, invoice_id)
    if invoice["status"] != "draft":
        raise StripeError(400, f"This invoice is already {invoice['status']}.")
    invoice["total"] = invoice["amount_due"] = sum(i["amount"] for i in invoice["lines"]["data"])
    invoice["number"] = f"FAKE-{len([i for i in state.invoices.values() if i['number']]) + 1:04d}"
    invoice["status"] = "open" if invoice["total"] > 0 else "paid"
    return invoice


def _v2(
    state: State, method: str, path: str, headers: Any, body: bytes
) -> tuple[int, Any, dict[str, str]]:
    if (method, path) == ("POST", "/v2/billing/meter_event_session"):
        if body and json.loads(body):
            raise StripeError(400, "This request takes no parameters.")
        token = "mes_tok_" + secrets.token_hex(12)
        now = state.now()
        state.sessions[token] = now + state.session_ttl
        state.sessions_created += 1
        return (
            200,
            {
                "id": state.new_id("mes"),
                "object": "v2.billing.meter_event_session",
                "authentication_token": token,
                "created": _iso(now),
                "expires_at": _iso(now + state.session_ttl),
                "livemode": False,
            },
            {},
        )
    if method == "GET" and path.startswith("/v2/core/events/"):
        event = state.core_events.get(path.rsplit("/", 1)[1])
        if event is None:
            raise StripeError(404, "No such event.", type="not_found")
        return 200, event, {}
    raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")


def _stream(state: State, token: str, headers: Any, body: bytes) -> dict[str, Any]:
    expires = state.sessions.get(token)
    if expires is None:
        raise StripeError(401, "Invalid authentication token.", type="invalid_request_error")
    if expires <= state.now():
        raise StripeError(
            401,
            "The meter event session has expired; create a new one.",
            type="temporary_session_expired",
            code="billing_meter_event_session_expired",
        )
    if not (headers.get("content-type") or "").startswith("application/json"):
        raise StripeError(400, "Send v2 requests as JSON.")
    params = json.loads(body or b"{}")
    _check(params, "stream")
    events = params["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= 100:
        raise StripeError(400, "events takes 1 to 100 events.", param="events")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise StripeError(400, "Invalid event.", param=f"events[{index}]")
        _check(event, "stream_event")
    for event in events:  # validated asynchronously by Stripe: problems become errors
        identifier = event.get("identifier") or state.new_id("idmp")
        state.presented[identifier] += 1
        seen = state.by_identifier.get(identifier)
        if seen is not None and state.now() - seen.received_at < DEDUPE:
            continue
        payload = event["payload"]
        stamp = state.now()
        try:
            if "timestamp" in event:
                stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                _timestamp(state, stamp, "timestamp")
            if not WHOLE.match(str(payload.get("value", ""))):
                raise StripeError(400, "The value must be a whole number.")
        except (StripeError, ValueError) as problem:
            state.errors.append({"identifier": identifier, "code": str(problem)})
            continue
        _take(state, event["event_name"], identifier, payload, stamp, "v2")
    return {}
