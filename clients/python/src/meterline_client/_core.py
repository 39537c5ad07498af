"""What both clients share: event bodies, checks, retries, answers, meters, the decorator.

Nothing here does I/O: the clients send what these functions build.
"""

from __future__ import annotations

import collections
import functools
import inspect
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

import httpx

from meterline_client import __version__
from meterline_client.errors import (
    InsufficientCredits,
    InvalidQuantity,
    LimitExceeded,
    MeterlineError,
    from_response,
)

log = logging.getLogger("meterline.sdk")
F = TypeVar("F", bound=Callable[..., Any])
Overflow = Literal["block", "raise"]
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_BACKOFF = 30.0
NO_METER_SECONDS = 60.0  # a feature found without a meter is asked about again after this


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


def quantity(value: Any, what: str = "quantity") -> Any:
    """``value`` as JSON carries it (Decimals as strings), refused here when the server
    would refuse it: negative, not a finite number."""
    if isinstance(value, bool):
        raise InvalidQuantity(f"{what} must be a number, not {value!r}")
    try:
        number = Decimal(str(value)) if isinstance(value, int | float | str) else value
    except InvalidOperation:
        raise InvalidQuantity(f"{what} must be a number, not {value!r}") from None
    if not isinstance(number, Decimal) or not number.is_finite():
        raise InvalidQuantity(f"{what} must be a finite number, not {value!r}")
    if number < 0:
        raise InvalidQuantity(f"{what} must not be negative (got {value}): usage is never negative")
    return str(value) if isinstance(value, Decimal) else value


def new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def event(
    type: str,
    customer: str,
    quantity_: Any = 1,
    properties: dict[str, Any] | None = None,
    id: str | None = None,
    subject: str | None = None,
    timestamp: datetime | str | None = None,
) -> dict[str, Any]:
    """An event body with a client-made id (``evt_`` + UUID4) and timestamp, so that
    sending it twice counts once. A negative quantity raises ``InvalidQuantity``."""
    body: dict[str, Any] = {
        "id": id or new_id(),
        "type": type,
        "customer": customer,
        "quantity": quantity(quantity_),
        "timestamp": (timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp)
        or datetime.now().astimezone().isoformat(),
    }
    if properties:
        body["properties"] = properties
    if subject is not None:
        body["subject"] = subject
    return body


def check_body(
    customer: str,
    feature: str,
    amount: Any,
    consume: bool,
    id: str | None,
    subject: str | None,
    properties: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": customer,
        "feature": feature,
        "quantity": quantity(amount),
        "consume": consume,
    }
    if consume:
        body["id"] = id or new_id()  # a retried consume counts once
    if subject is not None:
        body["subject"] = subject
    if properties:
        body["properties"] = properties
    return body


def hold_body(
    customer: str, feature: str, amount: Any, ttl_seconds: int, **kw: Any
) -> dict[str, Any]:
    return {
        "customer": customer,
        "feature": feature,
        "quantity": quantity(amount),
        "ttl_seconds": ttl_seconds,
        **kw,
    }


def denied(result: CheckResult) -> CheckResult:
    """A consume's answer, or its refusal raised."""
    if result.allowed:
        return result
    if result.reason == "insufficient_credits":
        raise InsufficientCredits(f"{result.feature}: not enough credits", result)
    if result.reason == "limit_exceeded":
        raise LimitExceeded(f"{result.feature}: limit exceeded", result)
    raise LimitExceeded(f"{result.feature}: {result.reason}", result)


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before retry ``attempt``: doubling from 0.25 s, at most 30 s, jittered; a
    server's ``Retry-After`` is honoured (never waiting less than it asks)."""
    ceiling: float = min(MAX_BACKOFF, 0.25 * 2.0**attempt)
    wait = ceiling * random.uniform(0.5, 1.0)
    return max(wait, min(retry_after, MAX_BACKOFF)) if retry_after is not None else wait


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (the delta form; dates are ignored)."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"meterline-python/{__version__}"}


def answer(response: httpx.Response) -> Any:
    if response.status_code == 204:
        return None
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        raise from_response(response.status_code, body, retry_after(response))
    return response.json()


class Options:
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
        # accepted events some meter of their type does not count, and why (the latest)
        self.warnings: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._meters: dict[str, tuple[Meter | None, float]] = {}

    def _note_outcome(self, batch: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
        """A batch's answer: refused events logged and kept in ``rejected``; accepted
        events no meter counts (``unmetered``, ``filtered_out``, …) logged and kept in
        ``warnings`` — stored, but counted by nothing until a meter would."""
        for error in outcome.get("errors", []):
            found = {"event": batch[error["index"]], "code": error["code"]}
            found["message"] = error["message"]
            log.error("meterline: event %s refused: %s", found["event"]["id"], error["message"])
            self.rejected.append(found)
        warnings = outcome.get("warnings", [])
        for warning in warnings:
            self.warnings.append({"event": batch[warning["index"]], **warning})
        if warnings:
            log.warning(
                "meterline: %d accepted events are counted by no meter (%s)",
                outcome.get("unmetered", len(warnings)),
                warnings[0]["message"],
            )

    def _reject(self, what: dict[str, Any], error: MeterlineError) -> None:
        """Usage that could not be recorded: logged and kept in ``rejected``."""
        log.error("meterline: usage of %s not recorded: %s", what, error)
        self.rejected.append({"event": what, "code": error.error_code, "message": str(error)})


# -- features and their meters ----------------------------------------------------------------


class NotCounted(MeterlineError):
    """The feature's meter would not count this usage (no meter, or its filter)."""

    error_code = "not_counted"


_MISSING = object()


def _lookup(properties: dict[str, Any], path: str) -> Any:
    node: Any = properties
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _put(properties: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``properties`` with ``value`` at the dotted ``path``."""
    head, _, rest = path.partition(".")
    inner = properties.get(head)
    copy = dict(properties)
    copy[head] = _put(inner if isinstance(inner, dict) else {}, rest, value) if rest else value
    return copy


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    return bool(actual == wanted)


@dataclass(frozen=True)
class Meter:
    """What the client needs of a meter to record a feature's usage through it."""

    key: str
    event_type: str
    value_property: str | None
    filter: dict[str, Any]

    @classmethod
    def of(cls, body: dict[str, Any]) -> Meter:
        return cls(
            body["key"], body["event_type"], body.get("value_property"), body.get("filter") or {}
        )

    def usage_event(
        self, customer: str, amount: Any, properties: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The event this meter counts as ``amount`` of usage: its ``event_type``, the
        amount in ``value_property`` when it has one. Raises ``NotCounted`` when its
        filter would not count the event, ``InvalidQuantity`` for a negative amount."""
        props = dict(properties or {})
        quantity(amount)
        for path, wanted in self.filter.items():
            actual = _lookup(props, path)
            options = wanted if isinstance(wanted, list) else [wanted]
            if actual is _MISSING or not any(_same(actual, o) for o in options):
                raise NotCounted(
                    f"meter {self.key!r} counts only events whose properties.{path} is "
                    f"{wanted!r}; pass properties= so the usage is counted"
                )
        if self.value_property:
            props = _put(props, self.value_property, quantity(amount, self.value_property))
            return event(self.event_type, customer, 1, props)
        return event(self.event_type, customer, amount, props)


def no_meter(feature: str) -> NotCounted:
    return NotCounted(f"feature {feature!r} has no meter: nothing would count its usage")


# -- the decorator ----------------------------------------------------------------------------


def _resolve(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    if not callable(value):
        return value
    try:
        return value(*args, **kwargs, result=result)
    except TypeError:
        return value(*args, **kwargs)


Record = Callable[[Any, Any, Any], None]
ARecord = Callable[[Any, Any, Any], Awaitable[None]]


def usage_decorator(
    record: Record | None,
    arecord: ARecord,
    customer: str | Callable[..., str],
    amount: Any,
    properties: Any,
) -> Callable[[F], F]:
    """Records usage when the decorated call (sync or async) returns without raising;
    ``record``/``arecord`` never raise (a refusal is logged and kept in ``rejected``)."""

    def decorate(fn: F) -> F:
        def parts(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> tuple[Any, ...]:
            return tuple(_resolve(v, args, kwargs, result) for v in (customer, amount, properties))

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                result = await fn(*args, **kwargs)
                await arecord(*parts(args, kwargs, result))
                return result

            return run_async  # type: ignore[return-value]
        if record is None:
            raise TypeError("an AsyncClient decorates async functions only")
        synchronous = record

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            synchronous(*parts(args, kwargs, result))
            return result

        return run  # type: ignore[return-value]

    return decorate
