"""Bad input, by class, against every field that takes it: dates at and past the
bounds, decimals (negative, huge, tiny, exponent forms, 40 digits), ids (empty, 256+
characters, control characters, `/`), free text with NUL or far too long, and nested or
oversized JSON. Each must be refused with a 4xx problem+json and a stable code (an event
in a batch: rejected on its own), and nothing stored may change — on SQLite and on
PostgreSQL, where NUL and overflowing dates used to give 500s."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from limits_support import customer_on, meter
from meterline.app import create_app
from meterline.db import Database
from meterline.models import metadata
from support import Api

CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# Tables whose rows a refused request may still touch by design: statistics of what was
# refused, and keys' last use.
UNWATCHED = {"ingest_stats", "api_keys"}


@dataclass(frozen=True)
class Slot:
    """Where a bad value goes: a request that is valid as given, and one field of it."""

    name: str
    method: str
    path: str  # may hold {value} for a path slot
    field: str  # "path", "query:<name>", or a dotted body path ("events.0.timestamp")
    body: Any = None
    query: dict[str, str] | None = None

    @property
    def event(self) -> bool:
        return self.method == "POST" and self.path == "/v1/events"


def _set(body: Any, dotted: str, value: Any) -> Any:
    import copy

    found = copy.deepcopy(body)
    node = found
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return found


def _event(**fields: Any) -> dict[str, Any]:
    return {"events": [{"id": "bad-1", "type": "scan", "customer": "acme", **fields}]}


_sent = iter(range(10**9))


NOW = datetime.now(UTC).replace(microsecond=0)
CHECK = {
    "customer": "acme",
    "feature": "tok",
    "quantity": "5",
    "properties": {"usage": {"tokens": 5}},
}
PLAN = {
    "key": "p2",
    "name": "P2",
    "currency": "USD",
    "base_fee": "10",
    "features": {
        "scan": {
            "included": "5",
            "price": {"model": "per_unit", "unit_price": "0.5"},
            "limits": [{"window": "day", "max": "9"}],
        }
    },
}

DATE_SLOTS = [
    Slot(
        "event timestamp",
        "POST",
        "/v1/events",
        "events.0.timestamp",
        _event(timestamp=NOW.isoformat()),
    ),
    Slot(
        "grant expiry",
        "POST",
        "/v1/customers/acme/credits/grants",
        "expires_at",
        {"amount": "5", "expires_at": (NOW + timedelta(days=9)).isoformat()},
    ),
    Slot(
        "subscription start",
        "POST",
        "/v1/subscriptions",
        "start_at",
        {"customer": "solo", "plan": "pro", "start_at": NOW.isoformat()},
    ),
    *[
        Slot(f"{path} {name}", "GET", path, f"query:{name}", query={"from": "2026-01-01T00:00:00Z"})
        for path in ("/v1/events", "/v1/invoices", "/v1/alerts", "/v1/meters/scan/usage")
        for name in ("from", "to")
    ],
]
DECIMAL_SLOTS = [
    Slot("event quantity", "POST", "/v1/events", "events.0.quantity", _event(quantity="1")),
    Slot(
        "event value",
        "POST",
        "/v1/events",
        "events.0.properties.usage.tokens",
        _event(type="tok", properties={"usage": {"tokens": 5}}),
    ),
    Slot("check quantity", "POST", "/v1/check", "quantity", CHECK),
    Slot("check value", "POST", "/v1/check", "properties.usage.tokens", {**CHECK, "consume": True}),
    Slot("hold quantity", "POST", "/v1/reservations", "quantity", CHECK),
    Slot(
        "settle quantity",
        "POST",
        "/v1/reservations/{reservation}/settle",
        "quantity",
        {"quantity": "3", "properties": {"usage": {"tokens": 3}}},
    ),
    Slot("grant amount", "POST", "/v1/customers/acme/credits/grants", "amount", {"amount": "5"}),
    Slot("debit amount", "POST", "/v1/customers/acme/credits/debits", "amount", {"amount": "1"}),
    Slot(
        "threshold",
        "PATCH",
        "/v1/customers/acme/credits",
        "low_balance_threshold",
        {"low_balance_threshold": "3"},
    ),
    Slot("base fee", "POST", "/v1/plans", "base_fee", PLAN),
    Slot("unit price", "POST", "/v1/plans", "features.scan.price.unit_price", PLAN),
    Slot("included", "POST", "/v1/plans", "features.scan.included", PLAN),
    Slot("limit max", "POST", "/v1/plans", "features.scan.limits.0.max", PLAN),
]
ID_SLOTS = [
    Slot("event id", "POST", "/v1/events", "events.0.id", _event()),
    Slot("event customer", "POST", "/v1/events", "events.0.customer", _event()),
    Slot("event type", "POST", "/v1/events", "events.0.type", _event()),
    Slot("customer id", "POST", "/v1/customers", "external_id", {"external_id": "new"}),
    Slot(
        "customer parent",
        "POST",
        "/v1/customers",
        "parent",
        {"external_id": "new", "parent": "acme"},
    ),
    Slot(
        "meter key",
        "POST",
        "/v1/meters",
        "key",
        {"key": "m2", "event_type": "m2", "aggregation": "count"},
    ),
    Slot("plan key", "POST", "/v1/plans", "key", PLAN),
    Slot("check customer", "POST", "/v1/check", "customer", CHECK),
    Slot("check feature", "POST", "/v1/check", "feature", CHECK),
    Slot("consume id", "POST", "/v1/check", "id", {**CHECK, "consume": True}),
    Slot(
        "subscription plan",
        "POST",
        "/v1/subscriptions",
        "plan",
        {"customer": "solo", "plan": "pro"},
    ),
    Slot("customer path", "GET", "/v1/customers/{value}", "path"),
    Slot("meter path", "GET", "/v1/meters/{value}", "path"),
    Slot("usage path", "GET", "/v1/customers/{value}/usage", "path"),
    Slot("void path", "POST", "/v1/events/{value}/void", "path"),
    Slot("events customer", "GET", "/v1/events", "query:customer"),
]
TEXT_SLOTS = [
    Slot("customer name", "POST", "/v1/customers", "name", {"external_id": "new", "name": "New"}),
    Slot(
        "meter name",
        "POST",
        "/v1/meters",
        "name",
        {"key": "m2", "name": "M", "event_type": "m2", "aggregation": "count"},
    ),
    Slot(
        "meter unit",
        "POST",
        "/v1/meters",
        "unit",
        {"key": "m2", "unit": "u", "event_type": "m2", "aggregation": "count"},
    ),
    Slot(
        "meter event type",
        "POST",
        "/v1/meters",
        "event_type",
        {"key": "m2", "event_type": "m2", "aggregation": "count"},
    ),
    Slot("plan name", "POST", "/v1/plans", "name", PLAN),
    Slot(
        "grant description",
        "POST",
        "/v1/customers/acme/credits/grants",
        "description",
        {"amount": "5", "description": "pack"},
    ),
    Slot(
        "debit reference",
        "POST",
        "/v1/customers/acme/credits/debits",
        "reference",
        {"amount": "1", "reference": "order-1"},
    ),
    Slot("key name", "POST", "/v1/api-keys", "name", {"name": "k", "scopes": ["read"]}),
    Slot("event subject", "POST", "/v1/events", "events.0.subject", _event(subject="user")),
    Slot("void reason", "POST", "/v1/events/{event}/void", "reason", {"reason": "refund"}),
    Slot("workspace name", "PATCH", "/v1/workspace", "name", {"name": "alpha"}),
]
JSON_SLOTS = [
    Slot("event properties", "POST", "/v1/events", "events.0.properties", _event(properties={})),
    Slot(
        "customer metadata",
        "POST",
        "/v1/customers",
        "metadata",
        {"external_id": "new", "metadata": {}},
    ),
    Slot("check properties", "POST", "/v1/check", "properties", CHECK),
    Slot(
        "grant metadata",
        "POST",
        "/v1/customers/acme/credits/grants",
        "metadata",
        {"amount": "5", "metadata": {}},
    ),
    Slot(
        "meter filter",
        "POST",
        "/v1/meters",
        "filter",
        {"key": "m2", "event_type": "m2", "aggregation": "count", "filter": {}},
    ),
]

# -- the classes -------------------------------------------------------------------------------

_offsets = st.integers(-14 * 4, 14 * 4).map(lambda q: timedelta(minutes=15 * q))


def _stamp(year: int, month: int, day: int, hour: int, offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:59:59{zone}"


BAD_DATES = st.one_of(
    st.builds(
        _stamp,
        st.integers(1, 1969) | st.integers(9000, 9999),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        _offsets,
    ),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1969-12-31T23:59:59Z",
            "9000-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01",
            "",
            "yesterday",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00Z" * 10,
            "1e9",
            "0",
        ]
    ),
)
BAD_DECIMALS = st.one_of(
    st.decimals(max_value=Decimal("-0.000000000001"), min_value=Decimal("-1e17"), places=6).map(
        str
    ),
    st.decimals(min_value=Decimal("1e18"), max_value=Decimal("1e40"), places=0).map(str),
    st.integers(10**18, 10**40).map(lambda n: n),  # a JSON number
    st.integers(13, 30).map(lambda places: "0." + "0" * (places - 1) + "1"),
    st.sampled_from(
        [
            "-1",
            "-1e3",
            "1e18",
            "1E+19",
            "1E-20",
            "-0.5",
            "1234567890123456789012345678901234567890",
            "NaN",
            "Infinity",
            "-Infinity",
            "1_000",
            "0x10",
            "",
            " ",
            "1,5",
            "٣",
        ]
    ),
    st.just(1e308),
    st.booleans(),
)
BAD_IDS = st.one_of(
    st.just(""),
    st.integers(256, 2000).map(lambda n: "a" * n),
    st.tuples(
        st.text(max_size=5), st.characters(min_codepoint=0, max_codepoint=31), st.text(max_size=5)
    ).map("".join),
)
BAD_TEXT = st.one_of(
    st.tuples(st.text(max_size=10), st.text(max_size=10)).map(lambda p: p[0] + "\x00" + p[1]),
    st.integers(20_000, 200_000).map(lambda n: "x" * n),
)


@dataclass(frozen=True)
class Deep:
    """``{"a": {"a": … {"v": 1} …}}``, ``depth`` levels: written as text (no encoder
    nests that deep)."""

    depth: int

    def json(self) -> str:
        return '{"a":' * self.depth + '{"v":1}' + "}" * self.depth


BAD_JSON = st.one_of(
    st.integers(33, 3000).map(Deep),  # deeper than anything stored can be read back
    st.integers(40_000, 300_000).map(lambda n: {"blob": "x" * n}),  # past every size limit
    st.just({"k\x00": 1}),
    st.just({"k": ["ok", "x\x00"]}),
    st.just([1, 2]),
    st.just("text"),
)

# -- the state that must not change -------------------------------------------------------------


def _snapshot(db: Database) -> dict[str, Any]:
    found = {}
    with db.read() as session:
        for table in metadata.sorted_tables:
            if table.name in UNWATCHED:
                continue
            rows = session.execute(text(f'SELECT * FROM "{table.name}"')).all()
            found[table.name] = sorted(repr(tuple(r)) for r in rows)
    return found


@dataclass
class World:
    api: Api
    db: Database
    ids: dict[str, str]
    before: dict[str, Any]


@pytest.fixture
def world(api: Api, db: Database) -> World:
    meter(api, "scan")
    meter(api, "tok", "sum", value_property="usage.tokens")
    r = api.post(
        "/v1/plans",
        json={
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "features": {
                "scan": {"limits": [{"window": "day", "max": "50"}]},
                "tok": {"limits": [{"window": "day", "max": "1000"}]},
            },
        },
    )
    assert r.status_code == 201, r.text
    customer_on(api, "acme", plan="pro")
    assert api.post("/v1/customers", json={"external_id": "solo"}).status_code == 201
    assert api.post("/v1/customers/acme/credits/grants", json={"amount": "50"}).status_code == 201
    hold = api.post("/v1/reservations", json={**CHECK, "ttl_seconds": 3600}).json()
    assert hold["allowed"] is True, hold
    assert (
        api.post("/v1/events", json={"id": "e1", "type": "scan", "customer": "acme"}).json()[
            "accepted"
        ]
        == 1
    )
    return World(api, db, {"reservation": hold["id"], "event": "e1"}, _snapshot(db))


_HOLE = "\uffff-the-bad-value-\uffff"


def _dumps(value: Any) -> str:
    if isinstance(value, Deep):
        return value.json()
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    return json.dumps(value)


def _send(world: World, slot: Slot, value: Any) -> Any:
    path = slot.path.format(value=quote(str(value), safe=""), **world.ids)
    query = dict(slot.query or {})
    content = None
    if slot.field.startswith("query:"):
        query[slot.field.split(":", 1)[1]] = value
    elif slot.field != "path":
        body = slot.body
        if slot.event and slot.field != "events.0.id":
            body = _set(body, "events.0.id", f"bad-{next(_sent)}")
        content = json.dumps(_set(body, slot.field, _HOLE)).replace(
            json.dumps(_HOLE), _dumps(value)
        )
    elif slot.body is not None:
        content = json.dumps(slot.body)
    headers = {"content-type": "application/json"} if content is not None else None
    return world.api.request(
        slot.method, path, params=query or None, content=content, headers=headers
    )


def refused(world: World, slot: Slot, value: Any) -> None:
    if slot.field == "path" and value == "":
        return  # an empty path segment is another route (a list), not a bad id
    r = _send(world, slot, value)
    assert r.status_code < 500, (slot.name, value, r.text[:300])
    if slot.event and r.status_code == 200:
        body = r.json()
        if slot.name == "event value" and body["accepted"] == 1:
            # An unusable value (not a number) is kept and said: the meter counts
            # nothing of it, and the answer names the meter and why. Never negative.
            [warning] = body["warnings"]
            assert warning["code"] in ("invalid_value", "missing_value"), body
            assert "'tok'" in warning["message"], body
            world.before = _snapshot(world.db)
            return
        assert (body["accepted"], body["rejected"]) == (0, 1), (slot.name, value, body)
        assert CODE.match(body["errors"][0]["code"]), body
    else:
        assert 400 <= r.status_code < 500, (
            slot.name,
            repr(value)[:80],
            r.status_code,
            r.text[:300],
        )
        assert r.headers["content-type"].startswith("application/problem+json"), r.text[:200]
        assert CODE.match(r.json()["code"]), r.text[:200]
    assert _snapshot(world.db) == world.before, (slot.name, repr(value)[:80], "changed state")


_RENAMED = {"bad-1": "ok-{n}", "new": "new{n}", "m2": "m{n}", "p2": "p{n}", "solo": "solo{n}"}


def _fresh(value: Any, n: int) -> Any:
    """The same request with its new objects' names made unique."""
    if isinstance(value, dict):
        return {k: _fresh(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v, n) for v in value]
    if isinstance(value, str) and value in _RENAMED:
        return _RENAMED[value].format(n=n)
    return value


def test_the_valid_requests_are_valid(world: World) -> None:
    """Each slot's request is accepted as given (so a refusal is about the bad value)."""
    slots = [*DATE_SLOTS, *DECIMAL_SLOTS, *ID_SLOTS, *TEXT_SLOTS, *JSON_SLOTS]
    for n, slot in enumerate(slots):
        if slot.field == "path":
            continue
        world.api.post("/v1/customers", json={"external_id": f"solo{n}"})
        path = slot.path.format(**world.ids)
        r = world.api.request(slot.method, path, params=slot.query, json=_fresh(slot.body, n))
        assert r.status_code < 300, (slot.name, r.text[:300])
        if slot.event:
            assert r.json()["rejected"] == 0, (slot.name, r.json())
        if "reservations" in slot.path:  # a settlement closes the hold: make another
            hold = world.api.post("/v1/reservations", json={**CHECK, "ttl_seconds": 3600})
            world.ids["reservation"] = hold.json()["id"]


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _property(slots: list[Slot], values: st.SearchStrategy[Any]) -> Callable[[World], None]:
    @SETTINGS
    @given(slot=st.sampled_from(slots), value=values)
    def run(world: World, slot: Slot, value: Any) -> None:
        refused(world, slot, value)

    return run


test_dates_out_of_range_or_malformed = _property(DATE_SLOTS, BAD_DATES)
test_decimals_negative_huge_tiny_or_not_numbers = _property(DECIMAL_SLOTS, BAD_DECIMALS)
test_ids_empty_too_long_or_with_control_characters = _property(ID_SLOTS, BAD_IDS)
test_text_with_nul_or_too_long = _property(TEXT_SLOTS, BAD_TEXT)
test_json_nested_oversized_or_not_an_object = _property(JSON_SLOTS, BAD_JSON)


NAMED = [
    (DATE_SLOTS[0], "9999-12-31T23:59:59-14:00"),  # the 500s, one by one
    (DATE_SLOTS[0], "0001-01-01T00:00:00+14:00"),
    (DATE_SLOTS[1], "9999-12-31T23:59:59-14:00"),
    (DATE_SLOTS[2], "0001-01-01T00:00:00+14:00"),
    *[(slot, "9999-12-31T23:59:59-14:00") for slot in DATE_SLOTS[3:]],
    (DECIMAL_SLOTS[0], "-40"),
    (DECIMAL_SLOTS[1], -500000),
    (DECIMAL_SLOTS[3], -5),
    (TEXT_SLOTS[0], "x\x00y"),
    (ID_SLOTS[11], "a\x00b"),
    (JSON_SLOTS[0], Deep(300)),
]


def test_named_cases(world: World) -> None:
    for slot, value in NAMED:
        refused(world, slot, value)


def test_a_slash_in_an_id_is_refused_or_reachable(world: World) -> None:
    """An id with `/` is either refused, or — an event id — still reachable by path."""
    for slot in [s for s in ID_SLOTS if s.field != "path"]:
        r = _send(world, slot, "a/b")
        assert r.status_code < 500, r.text
        if slot.name == "event id":
            assert r.json()["accepted"] == 1
            voided = world.api.post("/v1/events/a%2Fb/void")
            assert voided.status_code == 200, voided.text
            assert voided.json()["id"] == "a/b"


def test_idempotency_keys_are_bounded(world: World) -> None:
    """A key longer than the column (255) is refused, not a database error."""
    for key in ("k" * 256, "k" * 5000):
        r = world.api.post(
            "/v1/customers/acme/credits/grants",
            json={"amount": "1"},
            headers={"Idempotency-Key": key},
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert _snapshot(world.db) == world.before
    ok = world.api.post(
        "/v1/customers/acme/credits/grants",
        json={"amount": "1"},
        headers={"Idempotency-Key": "k" * 255},
    )
    assert ok.status_code == 201, ok.text


def _max_length(method: str, path: str, field: str) -> int | None:
    """The documented maxLength of a top-level body field (None when unbounded)."""
    document = create_app().openapi()
    schemas = document["components"]["schemas"]
    template = re.sub(r"/acme(?=/|$)", "/{external_id}", path)
    operation = document["paths"].get(template, {}).get(method.lower())
    if operation is None or "." in field:
        return None
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    body = schemas[body["$ref"].split("/")[-1]] if "$ref" in body else body
    spec = body.get("properties", {}).get(field, {})
    options = spec.get("anyOf", [spec])
    lengths = [o["maxLength"] for o in options if "maxLength" in o]
    return max(lengths) if lengths else None


def test_values_at_the_length_limit_fit_their_columns(world: World) -> None:
    """The longest value the API accepts is stored (PostgreSQL enforces column lengths),
    and one character more is refused: the schema and the table agree."""
    checked = 0
    for n, slot in enumerate([*TEXT_SLOTS, *ID_SLOTS]):
        if slot.field == "path" or slot.field.startswith("query:") or slot.event:
            continue
        limit = _max_length(slot.method, slot.path, slot.field)
        if limit is None:
            continue
        checked += 1
        world.api.post("/v1/customers", json={"external_id": f"solo{n}"})
        longest = "a" * limit
        r = _send_as(world, slot, _fresh(slot.body, n), longest)
        assert r.status_code < 500, (slot.name, limit, r.text[:300])
        too_long = _send_as(world, slot, _fresh(slot.body, n + 1000), longest + "a")
        assert too_long.status_code == 422, (slot.name, limit, too_long.text[:300])
    assert checked >= 10


def _send_as(world: World, slot: Slot, body: Any, value: Any) -> Any:
    path = slot.path.format(**world.ids)
    return world.api.request(slot.method, path, json=_set(body, slot.field, value))
