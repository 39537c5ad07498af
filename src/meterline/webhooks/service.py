"""Webhooks (SPEC §6): endpoints, messages written with their cause, signed deliveries
retried from the job runner, every attempt logged.

``emit`` runs in the transaction of the change that causes the event: it writes the
message, a delivery per subscribed endpoint and a ``webhook.deliver`` job for each, so
a crash before delivery loses nothing (at least once). ``deliver`` runs outside any
transaction (it waits on the network), then records the attempt; a 2xx is success,
anything else is retried on ``RETRY_SCHEDULE`` (with up to 20 % jitter added, so
retries of many messages spread out), about 28 hours in all. An endpoint whose every
delivery has failed for ``DISABLE_AFTER`` is disabled and says why.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from meterline.customers import service as customers
from meterline.db import Database, get_owned, newest_page
from meterline.errors import NotFound, invalid
from meterline.jobs import service as jobs
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from meterline.webhooks.schemas import (
    AttemptRead,
    DeliveryRead,
    EndpointCreate,
    EndpointRead,
    EndpointUpdate,
)
from meterline.webhooks.signing import new_secret, sign

DELIVER = "webhook.deliver"
# Wait after attempt n fails (8 attempts): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_SCHEDULE = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
]
DISABLE_AFTER = timedelta(days=5)
ROTATION_GRACE = timedelta(hours=24)
USER_AGENT = "Meterline-Webhooks/1"


# -- endpoints -----------------------------------------------------------------------------


def check_url(url: str, allow_private: bool) -> None:
    """http(s) only; a host that resolves to a loopback, private, link-local or other
    non-public address is refused unless ``allow_private`` (422
    ``webhook_url_not_allowed``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("url", "invalid_url", "Use an http:// or https:// URL with a host.")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise invalid("url", "webhook_url_unresolvable", f"{parts.hostname!r}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise invalid(
                "url",
                "webhook_url_not_allowed",
                f"{parts.hostname!r} resolves to {address}, which is not a public address "
                "(METERLINE_WEBHOOKS_ALLOW_PRIVATE=1 allows it for development).",
            )


def to_read(endpoint: WebhookEndpoint, secret: str | None = None) -> EndpointRead:
    return EndpointRead(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        created_at=endpoint.created_at,
        secret=secret,
    )


def create(
    session: Session, workspace_id: int, data: EndpointCreate, allow_private: bool, now: datetime
) -> EndpointRead:
    check_url(data.url, allow_private)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        workspace_id=workspace_id,
        url=data.url,
        description=data.description,
        events=sorted(set(data.events)),
        secret=secret,
        enabled=True,
        created_at=now,
    )
    session.add(endpoint)
    session.flush()
    return to_read(endpoint, secret)


def get(session: Session, workspace_id: int, endpoint_id: str) -> WebhookEndpoint:
    endpoint = get_owned(session, WebhookEndpoint, endpoint_id, workspace_id, "webhook endpoint")
    if endpoint.deleted_at is not None:
        raise NotFound(f"No webhook endpoint {endpoint_id!r}.")
    return endpoint


def list_page(
    session: Session, workspace_id: int, *, limit: int, after: str | None
) -> Page[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.deleted_at.is_(None)
    )
    position = cursor_key(after, str)
    if position is not None:
        query = query.where(WebhookEndpoint.id > position)
    rows = list(session.scalars(query.order_by(WebhookEndpoint.id).limit(limit + 1)))
    return make_page(rows, limit, lambda row: row.id)


def update(
    session: Session,
    workspace_id: int,
    endpoint_id: str,
    data: EndpointUpdate,
    allow_private: bool,
) -> EndpointRead:
    endpoint = get(session, workspace_id, endpoint_id)
    if data.url is not None:
        check_url(data.url, allow_private)
        endpoint.url = data.url
    if data.events is not None:
        endpoint.events = sorted(set(data.events))
    if "description" in data.model_fields_set:
        endpoint.description = data.description
    if data.enabled is not None:
        endpoint.enabled = data.enabled
        if data.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    session.flush()
    return to_read(endpoint)


def rotate(session: Session, workspace_id: int, endpoint_id: str, now: datetime) -> EndpointRead:
    """A new secret, shown once; the old one also signs for ``ROTATION_GRACE``."""
    endpoint = get(session, workspace_id, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = now + ROTATION_GRACE
    endpoint.secret = new_secret()
    session.flush()
    return to_read(endpoint, endpoint.secret)


def delete(session: Session, workspace_id: int, endpoint_id: str, now: datetime) -> None:
    """Stop sending to it (its delivery log stays readable until the workspace goes)."""
    endpoint = get(session, workspace_id, endpoint_id)
    endpoint.deleted_at = now
    endpoint.enabled = False
    session.flush()


# -- messages --------------------------------------------------------------------------------


Data = dict[str, Any] | Callable[[], dict[str, Any]]


def emit(
    session: Session, workspace_id: int, kind: str, customer_id: int, data: Data, now: datetime
) -> str | None:
    """Queue ``kind`` about a customer for every endpoint that wants it, in the caller's
    transaction; ``data`` (or what it returns) follows the customer's external id.
    Nothing more is read or written when no endpoint wants it (returns None; else the
    message id)."""
    endpoints = [
        endpoint
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.workspace_id == workspace_id,
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.deleted_at.is_(None),
            )
        )
        if not endpoint.events or kind in endpoint.events
    ]
    if not endpoints:
        return None
    customer = customers.external_ids(session, {customer_id})[customer_id]
    numbers = data() if callable(data) else data
    body = {
        "type": kind,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {"customer": customer, **numbers},
    }
    message = WebhookMessage(
        id=new_id("msg"),
        workspace_id=workspace_id,
        type=kind,
        body=orjson.dumps(body).decode(),
        created_at=now,
    )
    session.add(message)
    session.flush()  # before its deliveries (no ORM relationship orders them)
    for endpoint in endpoints:
        delivery = WebhookDelivery(
            id=new_id("whd"),
            workspace_id=workspace_id,
            endpoint_id=endpoint.id,
            message_id=message.id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        _queue(session, delivery, now)
    session.flush()
    return message.id


def _queue(session: Session, delivery: WebhookDelivery, now: datetime) -> None:
    jobs.schedule(
        session, DELIVER, f"deliver:{delivery.id}", now, payload={"delivery": delivery.id}
    )


def deliver(db: Database, job: jobs.Claimed, now: datetime) -> datetime | None:
    """One attempt of a delivery (the ``webhook.deliver`` job); returns when to try
    again, or None when it succeeded or will not be tried again."""
    delivery_id = job.payload["delivery"]
    with db.read() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return None
        message = session.get(WebhookMessage, delivery.message_id)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    assert message is not None  # foreign keys
    assert endpoint is not None
    if not endpoint.enabled:
        reason = "endpoint deleted" if endpoint.deleted_at else "endpoint disabled"
        return _record(db, delivery_id, now, None, 0, reason)
    secrets = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_until or now) > now:
        secrets.append(endpoint.previous_secret)
    timestamp = int(now.timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, message.id, timestamp, message.body),
    }
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        check_url(endpoint.url, db.settings.webhooks_allow_private)  # DNS may have changed
        response = httpx.post(
            endpoint.url,
            content=message.body.encode(),
            headers=headers,
            timeout=db.settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a refused address (MeterlineError) or the like
        error = f"{type(exc).__name__}: {exc}"
    latency = round((time.perf_counter() - started) * 1000)
    return _record(db, delivery_id, now, status, latency, error)


def _record(
    db: Database,
    delivery_id: str,
    now: datetime,
    status: int | None,
    latency_ms: int,
    error: str | None,
) -> datetime | None:
    with db.write() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None  # read a moment ago; deliveries are never deleted alone
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                at=now,
                status_code=status,
                latency_ms=latency_ms,
                error=None if error is None else error[:1000],
            )
        )
        delivery.attempts += 1
        if error is None:
            delivery.status = "succeeded"
            delivery.next_attempt_at = None
            endpoint.failing_since = None
            return None
        if endpoint.enabled:
            endpoint.failing_since = endpoint.failing_since or now
            if now - endpoint.failing_since >= DISABLE_AFTER:
                endpoint.enabled = False
                endpoint.disabled_reason = (
                    f"Disabled at {now.isoformat()}: every delivery has failed since "
                    f"{endpoint.failing_since.isoformat()} (last: {error[:200]})."
                )
        if delivery.attempts > len(RETRY_SCHEDULE) or not endpoint.enabled:
            delivery.status = "failed"
            delivery.next_attempt_at = None
            return None
        wait = RETRY_SCHEDULE[delivery.attempts - 1] * random.uniform(1.0, 1.2)
        delivery.next_attempt_at = now + wait
        return delivery.next_attempt_at


def retry(session: Session, workspace_id: int, delivery_id: str, now: datetime) -> DeliveryRead:
    """Send a delivery again now, whatever its status (its attempts so far stay logged)."""
    delivery = get_owned(session, WebhookDelivery, delivery_id, workspace_id, "delivery")
    delivery.status = "pending"
    delivery.next_attempt_at = now
    _queue(session, delivery, now)
    session.flush()
    return _delivery_reads(session, [delivery])[0]


def deliveries(
    session: Session,
    workspace_id: int,
    endpoint_id: str,
    *,
    limit: int,
    after: str | None,
) -> Page[DeliveryRead]:
    """An endpoint's deliveries, newest first, each with every attempt."""
    endpoint = get_owned(session, WebhookEndpoint, endpoint_id, workspace_id, "webhook endpoint")
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    page = newest_page(session, query, WebhookDelivery.id, limit, after)
    return Page(_delivery_reads(session, page.items), page.next_cursor)


def attempt_log(
    session: Session, parent: InstrumentedAttribute[str], ids: list[str]
) -> dict[str, list[AttemptRead]]:
    """Every attempt of these deliveries (or of anything else logged the same way: an
    attempt table with ``at``, ``status_code``, ``latency_ms`` and ``error``, whose
    ``parent`` column names what was attempted), oldest first."""
    model: Any = parent.class_
    found: dict[str, list[AttemptRead]] = {row_id: [] for row_id in ids}
    for attempt in session.scalars(select(model).where(parent.in_(ids)).order_by(model.id)):
        found[getattr(attempt, parent.key)].append(
            AttemptRead(
                at=attempt.at,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                error=attempt.error,
            )
        )
    return found


def _delivery_reads(session: Session, rows: list[WebhookDelivery]) -> list[DeliveryRead]:
    attempts = attempt_log(session, WebhookAttempt.delivery_id, [row.id for row in rows])
    types = dict(
        session.execute(
            select(WebhookMessage.id, WebhookMessage.type).where(
                WebhookMessage.id.in_({row.message_id for row in rows})
            )
        ).all()
    )
    return [
        DeliveryRead(
            id=row.id,
            endpoint=row.endpoint_id,
            message_id=row.message_id,
            type=types[row.message_id],
            status=row.status,
            attempts=attempts[row.id],
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
        )
        for row in rows
    ]


def failures(session: Session, workspace_id: int, limit: int) -> list[DeliveryRead]:
    """The workspace's deliveries that gave up (every retry failed), newest first."""
    rows = list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.workspace_id == workspace_id, WebhookDelivery.status == "failed")
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
    return _delivery_reads(session, rows)
