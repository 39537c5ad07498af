"""Validating events one by one, with a stable code for each reason. No I/O.

Also maps CloudEvents (``subject`` → customer, ``data`` → properties, ``time`` →
timestamp) onto Meterline events.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from meterline.kit import payload as payloads
from meterline.kit.decimals import ONE, NotADecimal, canonical, parse_decimal
from meterline.kit.fields import MAX_PROPERTIES_BYTES
from meterline.kit.time import TimeOutOfRange, bounded

MAX_FUTURE = timedelta(minutes=5)
FIELDS = frozenset({"id", "type", "customer", "subject", "timestamp", "quantity", "properties"})
_TEXT_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
_CUSTOMER_RE = re.compile(r"^[^\s/?#%\\\x00-\x1f\x7f]{1,255}$")
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, order=True)
class Rejection:
    index: int
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass(slots=True)
class ValidEvent:
    index: int
    event_id: str | None  # None: the server names it
    event_type: str
    customer: str
    subject: str | None
    timestamp: datetime
    quantity: Decimal
    properties: dict[str, Any]
    content_hash: str


# The common shape, which needs no truncation: checked by ``datetime.fromisoformat``
# alone, then brought to UTC without the slower general gate when the year is so far
# inside 1970-9000 that no offset can take it out.
_PLAIN_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")


def parse_timestamp(value: Any) -> datetime:
    """RFC 3339 with an offset, in years 1970-9000 (``kit.time.bounded``), in UTC; more
    than 6 fractional digits are truncated. Raises ``TimeOutOfRange`` (with its code)."""
    if type(value) is str and _PLAIN_TIME.match(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass  # the general path below says why
        else:
            if 1971 <= parsed.year <= 8998:
                return parsed.astimezone(UTC)
    if not isinstance(value, str) or "T" not in value.upper() or len(value) > 64:
        raise TimeOutOfRange(
            "invalid_timestamp", "expected an RFC 3339 timestamp such as 2026-11-03T10:00:00Z"
        )
    try:
        parsed = datetime.fromisoformat(_FRACTION_RE.sub(r"\1", value))
    except ValueError as exc:
        raise TimeOutOfRange("invalid_timestamp", f"not an RFC 3339 timestamp: {exc}") from exc
    return bounded(parsed)


def content_hash(
    event_type: str,
    customer: str,
    subject: str | None,
    timestamp: datetime | None,
    quantity: Decimal,
    properties: dict[str, Any],
    encoded: bytes | None = None,
) -> str:
    """What makes two sends of one id the same event. A server-assigned timestamp is
    left out, so re-sending an event without one is a duplicate, not a conflict.
    ``encoded``: the properties as ``_sorted_json`` writes them, when already made."""
    stamp = timestamp.isoformat() if timestamp is not None else None
    if encoded is None:
        encoded = _sorted_json(properties)
    # The bytes of the JSON array [type, customer, subject, stamp, quantity, properties]
    # with sorted keys, the properties spliced in as already encoded.
    head = orjson.dumps(
        [event_type, customer, subject, stamp, "1" if quantity is ONE else canonical(quantity)]
    )
    return hashlib.blake2b(head[:-1] + b"," + encoded + b"]", digest_size=16).hexdigest()


def _sorted_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _text(raw: dict[str, Any], name: str, pattern: re.Pattern[str], index: int) -> str | Rejection:
    value = raw.get(name)
    if value is None:
        return Rejection(index, "missing_field", f"`{name}` is required")
    if not isinstance(value, str) or not pattern.match(value):
        return Rejection(
            index,
            "invalid_field",
            f"`{name}` must be a string of 1-255 characters"
            + (" without white space or / ? # % \\" if pattern is _CUSTOMER_RE else ""),
        )
    return value


def validate(raw: Any, index: int, now: datetime, lateness: timedelta) -> ValidEvent | Rejection:
    """One event checked on its own: a ``ValidEvent`` or the reason it is refused."""
    if not isinstance(raw, dict):
        return Rejection(index, "invalid_event", "an event is a JSON object")
    if not raw.keys() <= FIELDS:
        unknown = raw.keys() - FIELDS
        return Rejection(index, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    event_id = raw.get("id")
    if event_id is not None and (type(event_id) is not str or not _TEXT_RE.match(event_id)):
        return Rejection(index, "invalid_field", "`id` must be a string of 1-255 characters")
    event_type = raw.get("type")
    if type(event_type) is not str or not _TEXT_RE.match(event_type):
        found = _text(raw, "type", _TEXT_RE, index)
        if isinstance(found, Rejection):
            return found
        event_type = found
    customer = raw.get("customer")
    if type(customer) is not str or not _CUSTOMER_RE.match(customer):
        found = _text(raw, "customer", _CUSTOMER_RE, index)
        if isinstance(found, Rejection):
            return found
        customer = found
    subject = raw.get("subject")
    if subject is not None and (not isinstance(subject, str) or not _TEXT_RE.match(subject)):
        return Rejection(index, "invalid_field", "`subject` must be a string of 1-255 characters")
    given_time = raw.get("timestamp")
    timestamp: datetime | None = None
    if given_time is not None:
        try:
            timestamp = parse_timestamp(given_time)
        except TimeOutOfRange as exc:
            return Rejection(index, exc.code, str(exc))
        if timestamp > now + MAX_FUTURE:
            return Rejection(index, "in_future", "the timestamp is more than 5 minutes ahead")
        if timestamp < now - lateness:
            days = lateness.days
            return Rejection(index, "too_late", f"events older than {days} days are not accepted")
    quantity = ONE
    if raw.get("quantity") is not None:
        try:
            quantity = parse_decimal(raw["quantity"])
        except NotADecimal as exc:
            return Rejection(
                index, "invalid_quantity", f"`quantity` is not a finite decimal: {exc}"
            )
        if quantity < 0:
            return Rejection(
                index, "invalid_quantity", "`quantity` is negative: usage is never negative"
            )
    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        return Rejection(index, "invalid_properties", "`properties` must be a JSON object")
    try:
        encoded = _sorted_json(properties)
    except TypeError:  # nested past what orjson writes (the walk says where), or not JSON
        unstorable = payloads.problem(properties)
        if unstorable is not None:
            where, code, message = unstorable
            return Rejection(index, code, f"`properties.{where}`: {message}")
        return Rejection(index, "invalid_properties", "`properties` must be plain JSON")
    # Only JSON that spells a NUL, or has enough brackets to be nested too deep, needs
    # the walk that finds where (orjson writes a NUL as \u0000).
    if b"\\u0000" in encoded or encoded.count(b"{") + encoded.count(b"[") > payloads.MAX_DEPTH:
        unstorable = payloads.problem(properties)
        if unstorable is not None:
            where, code, message = unstorable
            return Rejection(index, code, f"`properties.{where}`: {message}")
    if len(encoded) > MAX_PROPERTIES_BYTES:
        return Rejection(index, "invalid_properties", "`properties` is limited to 16 KiB")
    return ValidEvent(
        index=index,
        event_id=event_id,
        event_type=event_type,
        customer=customer,
        subject=subject,
        timestamp=timestamp or now,
        quantity=quantity,
        properties=properties,
        content_hash=content_hash(
            event_type, customer, subject, timestamp, quantity, properties, encoded
        ),
    )


CLOUDEVENT_REQUIRED = ("specversion", "id", "source", "type")


def from_cloudevent(raw: Any) -> Any:
    """A CloudEvent (JSON format) as a Meterline event; anything else is passed through
    for ``validate`` to refuse."""
    if not isinstance(raw, dict):
        return raw
    missing = [name for name in CLOUDEVENT_REQUIRED if name not in raw]
    if missing:
        return {"__missing__": missing}
    event: dict[str, Any] = {"id": raw["id"], "type": raw["type"], "customer": raw.get("subject")}
    if raw.get("time") is not None:
        event["timestamp"] = raw["time"]
    if raw.get("data") is not None:
        event["properties"] = raw["data"]
    return event


def validate_cloudevent(
    raw: Any, index: int, now: datetime, lateness: timedelta
) -> ValidEvent | Rejection:
    mapped = from_cloudevent(raw)
    if isinstance(mapped, dict) and "__missing__" in mapped:
        names = ", ".join(mapped["__missing__"])
        return Rejection(index, "missing_field", f"CloudEvent attribute(s) missing: {names}")
    if isinstance(mapped, dict) and mapped.get("customer") is None:
        return Rejection(
            index, "missing_field", "the CloudEvent `subject` (the customer) is required"
        )
    return validate(mapped, index, now, lateness)
