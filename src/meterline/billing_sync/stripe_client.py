"""The one module that talks to Stripe, through the official ``stripe`` package's
``StripeClient``: pointed at ``METERLINE_STRIPE_API_BASE`` /
``METERLINE_STRIPE_METER_EVENTS_BASE`` when set, with the package's own retries off
(Meterline retries from its outbox, with its own backoff, honouring ``Retry-After``),
a client-side rate limit per Stripe account, and one meter event session per account,
renewed a minute before Stripe's 15 minutes run out.

Every failure comes back as a ``Failure``: retriable (network, 409, 429, 5xx) or not
(Stripe's other 4xx, with its message). Live Stripe answers a meter event whose
``identifier`` it already has with 400 "An event already exists with identifier …":
that is ``duplicate``, which callers treat as delivered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import stripe

from meterline.config import Settings
from meterline.kit.time import utc_now

SESSION_MARGIN = timedelta(minutes=1)
STREAM_BATCH = 100  # events per meter event stream request (Stripe's maximum)
_DUPLICATE = "an event already exists with identifier"


@dataclass(eq=False)
class Failure(Exception):
    """A Stripe request that did not succeed."""

    status: int | None  # Stripe's HTTP status; None: no answer (network, timeout)
    message: str
    retriable: bool
    retry_after: float | None = None
    duplicate: bool = False

    def __str__(self) -> str:
        return self.message


def failure_of(error: stripe.StripeError) -> Failure:
    status = error.http_status
    message = (error.user_message or str(error) or type(error).__name__)[:900]
    if isinstance(error, stripe.APIConnectionError) or status is None:
        return Failure(None, f"no answer from Stripe: {message}", retriable=True)
    if status == 400 and _DUPLICATE in message.lower():
        return Failure(status, message, retriable=False, duplicate=True)
    if status == 429:
        return Failure(status, message, retriable=True, retry_after=_retry_after(error))
    return Failure(status, message, retriable=status == 409 or status >= 500)


def _retry_after(error: stripe.StripeError) -> float | None:
    value = (error.headers or {}).get("Retry-After") or (error.headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class RateLimit:
    """A token bucket: ``per_second`` requests a second, bursts of one second's worth;
    ``take`` waits for a token (threads of one process share it)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._tokens = per_second
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                refill = (now - self._at) * self.per_second
                self._tokens = min(self.per_second, self._tokens + refill)
                self._at = now
                if self._tokens >= 1 - 1e-9:  # (a refill to exactly 1 may round below)
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                wait = (1 - self._tokens) / self.per_second
            self._sleep(wait)


_limits: dict[str, RateLimit] = {}
_sessions: dict[tuple[str, str], tuple[str, datetime]] = {}
_clients: dict[tuple[Any, ...], stripe.StripeClient] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class MeterEvent:
    identifier: str
    event_name: str
    stripe_customer_id: str
    value: int
    timestamp: datetime


class Stripe:
    """Stripe for one secret key, as the settings point it."""

    def __init__(self, secret_key: str, settings: Settings) -> None:
        self.secret_key = secret_key
        self.settings = settings
        bases: dict[str, str] = {}
        if settings.stripe_api_base:
            bases["api"] = settings.stripe_api_base.rstrip("/")
        if settings.stripe_meter_events_base:
            bases["meter_events"] = settings.stripe_meter_events_base.rstrip("/")
        self._bases = bases
        with _lock:
            self._limit = _limits.setdefault(
                secret_key, RateLimit(settings.stripe_requests_per_second)
            )
            self._limit.per_second = settings.stripe_requests_per_second

    def _client(self) -> stripe.StripeClient:
        key = (
            self.secret_key,
            tuple(sorted(self._bases.items())),
            self.settings.stripe_timeout_seconds,
        )
        with _lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = stripe.StripeClient(
                    self.secret_key,
                    base_addresses=cast(Any, self._bases),
                    max_network_retries=0,
                    http_client=stripe.RequestsClient(timeout=self.settings.stripe_timeout_seconds),
                )
            return found

    def _call(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self._limit.take()
        try:
            return request(*args, **kwargs)
        except stripe.StripeError as error:
            raise failure_of(error) from error

    # -- meter events ------------------------------------------------------------------

    def send_event(self, event: MeterEvent) -> None:
        """One meter event through v1 ``billing.meter_events``."""
        params: Any = {
            "event_name": event.event_name,
            "identifier": event.identifier,
            "timestamp": int(event.timestamp.timestamp()),
            "payload": {
                "stripe_customer_id": event.stripe_customer_id,
                "value": str(event.value),
            },
        }
        self._call(self._client().v1.billing.meter_events.create, params)

    def cancel_event(self, event_name: str, identifier: str, key: str) -> None:
        """Cancel one meter event (Stripe takes this within 24 hours of receiving it)."""
        params: Any = {
            "event_name": event_name,
            "type": "cancel",
            "cancel": {"identifier": identifier},
        }
        service = self._client().v1.billing.meter_event_adjustments
        self._call(service.create, params, {"idempotency_key": key})

    def stream(self, events: list[MeterEvent]) -> None:
        """Up to 100 meter events in one v2 meter event stream request, with this
        account's session token (made or renewed as needed; once more if Stripe says it
        expired)."""
        body: Any = {
            "events": [
                {
                    "event_name": e.event_name,
                    "identifier": e.identifier,
                    "timestamp": e.timestamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "payload": {"stripe_customer_id": e.stripe_customer_id, "value": str(e.value)},
                }
                for e in events
            ]
        }
        for renew in (False, True):
            token = self._session(renew)
            try:
                self._call(
                    self._client().v2.billing.meter_event_stream.create,
                    body,
                    {"api_key": token},
                )
                return
            except Failure as failure:
                if renew or not isinstance(failure.__cause__, stripe.TemporarySessionExpiredError):
                    raise

    def _session(self, renew: bool) -> str:
        key = (self.secret_key, self._bases.get("meter_events", ""))
        with _lock:
            found = _sessions.get(key)
        if found is not None and not renew and found[1] - utc_now() > SESSION_MARGIN:
            return found[0]
        session = self._call(self._client().v2.billing.meter_event_session.create)
        expires = datetime.fromisoformat(str(session.expires_at).replace("Z", "+00:00"))
        token = str(session.authentication_token)
        with _lock:
            _sessions[key] = (token, expires)
        return token

    def meters(self) -> dict[str, str]:
        """Active Stripe meters: event_name → meter id."""
        page = self._call(self._client().v1.billing.meters.list, {"status": "active", "limit": 100})
        return {str(m.event_name): str(m.id) for m in self._all(page)}

    def hourly_usage(
        self, meter_id: str, customer: str, start: datetime, end: datetime
    ) -> dict[datetime, int]:
        """Stripe's meter event summaries per hour of ``[start, end)`` (hour-aligned)."""
        params: Any = {
            "customer": customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "value_grouping_window": "hour",
            "limit": 100,
        }
        service = self._client().v1.billing.meters.event_summaries
        page = self._call(service.list, meter_id, params)
        found: dict[datetime, int] = {}
        for summary in self._all(page):
            hour = datetime.fromtimestamp(int(summary.start_time), start.tzinfo)
            found[hour] = found.get(hour, 0) + int(summary.aggregated_value)
        return found

    def _all(self, page: Any) -> Iterator[Any]:
        while True:
            yield from page.data
            if not page.has_more:
                return
            page = self._call(page.next_page)

    def fetch_event(self, event_id: str) -> dict[str, Any]:
        """A v2 event (a thin notification's full body)."""
        event = self._call(self._client().v2.core.events.retrieve, event_id)
        found: dict[str, Any] = event.to_dict()
        return found

    # -- invoices ----------------------------------------------------------------------

    def create_invoice(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        return self._post(self._client().v1.invoices.create, params, key)

    def add_item(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        return self._post(self._client().v1.invoice_items.create, params, key)

    def finalize(self, invoice_id: str, key: str) -> dict[str, Any]:
        service = self._client().v1.invoices
        found = self._call(
            service.finalize_invoice, invoice_id, {"auto_advance": True}, {"idempotency_key": key}
        )
        return cast(dict[str, Any], found.to_dict())

    def void(self, invoice_id: str, key: str) -> dict[str, Any]:
        found = self._call(
            self._client().v1.invoices.void_invoice, invoice_id, None, {"idempotency_key": key}
        )
        return cast(dict[str, Any], found.to_dict())

    def _post(self, request: Any, params: dict[str, Any], key: str) -> dict[str, Any]:
        found = self._call(request, params, {"idempotency_key": key})
        return cast(dict[str, Any], found.to_dict())


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> bool:
    """Whether ``Stripe-Signature`` signs ``payload`` with ``secret`` (the ``stripe``
    package's check, with its 5-minute tolerance)."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=300)
    except stripe.SignatureVerificationError:
        return False
    return True
