"""How one event contributes to one meter, and how contributions combine. No I/O.

A meter's number over any window is built from ``State``s: exact counts, sums,
minimums, maximums, the latest value and (for unique_count) the set of values seen.
States merge associatively, so 15-minute rollups combine into any longer window and
``avg`` stays exact (total sum / total count, never an average of averages).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import orjson

from meterline.kit.decimals import ZERO, NotADecimal, add, divide, parse_decimal

Aggregation = Literal["count", "sum", "min", "max", "avg", "unique_count", "latest", "duration"]
AGGREGATIONS: tuple[Aggregation, ...] = (
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "unique_count",
    "latest",
    "duration",
)
DURATION_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
NEEDS_VALUE = {"sum", "min", "max", "avg", "latest", "duration"}
_MISSING = object()


@dataclass(frozen=True)
class MeterSpec:
    """What aggregation needs to know of a meter."""

    id: int
    key: str
    event_type: str
    aggregation: Aggregation
    value_property: str | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    unit: str | None = None
    limited: bool = False  # some plan limits it: its limit counters are kept
    credited: bool = False  # some plan prices it in credits: its usage is charged


class ValueProblem(Exception):
    """Why an event gives a meter no value (shown with the event, never silent)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Contribution(NamedTuple):
    group_key: str
    value: Decimal  # 1 for count
    unique: str | None


def lookup(properties: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``usage.tokens``), or ``_MISSING``."""
    node: Any = properties
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _equal(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    return bool(actual == wanted)


def excluded_by(spec: MeterSpec, properties: dict[str, Any]) -> str | None:
    """Why the meter's filter leaves the event out (None: it passes)."""
    for path, wanted in spec.filter.items():
        actual = lookup(properties, path)
        options = wanted if isinstance(wanted, list) else [wanted]
        shown = orjson.dumps(options if len(options) > 1 else options[0]).decode()
        if actual is _MISSING:
            return f"meter {spec.key!r} counts only events whose {path!r} is {shown}; it is missing"
        if not any(_equal(actual, option) for option in options):
            return (
                f"meter {spec.key!r} counts only events whose {path!r} is {shown}; "
                f"it is {orjson.dumps(actual).decode()[:80]}"
            )
    return None


def matches(spec: MeterSpec, properties: dict[str, Any]) -> bool:
    """Whether the event passes the meter's filter (property equals value or one of values)."""
    for path, wanted in spec.filter.items():
        actual = lookup(properties, path)
        if actual is _MISSING:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_equal(actual, option) for option in options):
            return False
    return True


MAX_GROUP_VALUE = 100


def _group_value(value: Any) -> Any:
    """Scalars as they are; objects, arrays and text over 100 characters as text cut to
    80 characters plus a hash, so every group key fits an index entry."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) <= MAX_GROUP_VALUE:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[:80]}…{digest}"


def group_key(group_by: tuple[str, ...], properties: dict[str, Any]) -> str:
    """Canonical JSON of the group-by values ("" when the meter has no group_by)."""
    if not group_by:
        return ""
    values = {}
    for path in group_by:
        value = lookup(properties, path)
        values[path] = None if value is _MISSING else _group_value(value)
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()


def _unique_text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) > 200:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def contribute(
    spec: MeterSpec, quantity: Decimal, properties: dict[str, Any]
) -> Contribution | None:
    """What the event adds to the meter; None when the filter excludes it.

    Raises ``ValueProblem`` when the event matches but carries no usable value
    (missing, not a number, or negative: usage is never negative).
    """
    if spec.filter and not matches(spec, properties):
        return None
    key = group_key(spec.group_by, properties)
    if spec.aggregation == "count":
        return Contribution(key, Decimal(1), None)
    if spec.aggregation == "unique_count":
        raw = lookup(properties, spec.value_property or "")
        if raw is _MISSING or raw is None:
            raise ValueProblem("missing_value", f"property {spec.value_property!r} is missing")
        return Contribution(key, Decimal(1), _unique_text(raw))
    if spec.value_property is None:
        if quantity < 0:
            raise ValueProblem("negative_value", "the quantity is negative")
        return Contribution(key, quantity, None)
    raw = lookup(properties, spec.value_property)
    if raw is _MISSING or raw is None:
        raise ValueProblem("missing_value", f"property {spec.value_property!r} is missing")
    try:
        value = parse_decimal(raw)
    except NotADecimal as exc:
        raise ValueProblem(
            "invalid_value", f"property {spec.value_property!r} is not a number: {exc}"
        ) from exc
    if value < 0:
        raise ValueProblem(
            "negative_value",
            f"property {spec.value_property!r} is {value}: usage is never negative",
        )
    return Contribution(key, value, None)


@dataclass
class State:
    """Everything needed to answer any aggregation over a set of contributions."""

    count: int = 0
    sum: Decimal = ZERO
    min: Decimal | None = None
    max: Decimal | None = None
    latest_key: str | None = None
    latest_value: Decimal | None = None
    uniques: set[str] | None = None

    def add(self, value: Decimal, latest_key: str, unique: str | None) -> None:
        self.count += 1
        self.sum = add(self.sum, value)
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max
        if self.latest_key is None or latest_key > self.latest_key:
            self.latest_key, self.latest_value = latest_key, value
        if unique is not None:
            if self.uniques is None:
                self.uniques = set()
            self.uniques.add(unique)

    def merge(self, other: State) -> None:
        self.count += other.count
        self.sum = add(self.sum, other.sum)
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max
        if other.latest_key is not None and (
            self.latest_key is None or other.latest_key > self.latest_key
        ):
            self.latest_key, self.latest_value = other.latest_key, other.latest_value
        if other.uniques:
            if self.uniques is None:
                self.uniques = set()
            self.uniques |= other.uniques

    def result(self, spec: MeterSpec) -> Decimal:
        match spec.aggregation:
            case "count":
                return Decimal(self.count)
            case "sum":
                return self.sum
            case "min":
                return self.min if self.min is not None else ZERO
            case "max":
                return self.max if self.max is not None else ZERO
            case "avg":
                return divide(self.sum, Decimal(self.count)) if self.count else ZERO
            case "unique_count":
                return Decimal(len(self.uniques or ()))
            case "latest":
                return self.latest_value if self.latest_value is not None else ZERO
            case "duration":
                return divide(self.sum, unit_divisor(spec))
        raise ValueError(spec.aggregation)  # pragma: no cover - Literal is exhaustive


def unit_divisor(spec: MeterSpec) -> Decimal:
    """Raw contributions per reported unit: a duration meter sums seconds and reports
    minutes, hours or days; every other meter reports what it sums."""
    if spec.aggregation == "duration":
        return Decimal(DURATION_UNITS[spec.unit or "second"])
    return Decimal(1)


def latest_key(timestamp_iso: str, seq: int) -> str:
    """Orders events by time, then by arrival: the later one is the latest."""
    return f"{timestamp_iso}|{seq:020d}"


def counted(
    spec: MeterSpec, quantity: Decimal, properties: dict[str, Any], timestamp: datetime, seq: int
) -> tuple[Contribution, str] | None:
    """What a stored event counts for a meter, with its latest-key; None when the
    filter excludes it or it has no usable value (``GET /v1/events`` shows why)."""
    try:
        contribution = contribute(spec, quantity, properties)
    except ValueProblem:
        return None
    if contribution is None:
        return None
    return contribution, latest_key(timestamp.astimezone(UTC).isoformat(), seq)


def project(key: str, group_by: tuple[str, ...]) -> dict[str, Any]:
    """The requested group-by values out of a stored group key."""
    if not group_by:
        return {}
    stored = orjson.loads(key) if key else {}
    return {path: stored.get(path) for path in group_by}
