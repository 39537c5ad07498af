"""PostgreSQL's one-call consume (``meterline_consume``) answers and writes exactly what
the statement-by-statement path does: the same scenario runs in two workspaces of one
database, one with the function and one without, and every answer and every row the
consumes leave (events, rollups of every meter of the type, limit counters, hourly
statistics, wallets) is compared."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from limits_support import customer_on, plan_with
from meterline.db import Database
from meterline.entitlements import onecall
from support import PG_URL, Api

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="the function is PostgreSQL's"),
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

METERS = [  # every meter counts events of type "question"
    {"key": "question", "aggregation": "count"},
    {"key": "tokens", "aggregation": "sum", "value_property": "tokens", "group_by": ["model"]},
    {"key": "peak", "aggregation": "max", "value_property": "tokens"},
    {"key": "low", "aggregation": "min", "value_property": "tokens"},
    {"key": "last", "aggregation": "latest", "value_property": "tokens"},
    {"key": "big", "aggregation": "count", "filter": {"model": "big"}},
]
FEATURES = {
    "question": {
        "limits": [
            {"window": "day", "max": "4", "alert_at": ["0.5"]},
            {"window": "month", "max": "2", "enforcement": "soft"},
        ]
    },
    "tokens": {"limits": [{"window": "day", "max": "1000"}]},
    "big": {},
}


def scenario(api: Api) -> list[tuple[int, dict[str, Any]]]:
    for meter in METERS:
        r = api.post("/v1/meters", json={"event_type": "question", **meter})
        assert r.status_code == 201, r.text
    plan_with(api, FEATURES)
    customer_on(api, "alice")

    def ask(**fields: Any) -> tuple[int, dict[str, Any]]:
        r = api.post("/v1/check", json={"customer": "alice", "feature": "question", **fields})
        body = r.json()
        body.pop("event_id", None)  # random unless the request names it
        return r.status_code, body

    small = {"tokens": 5, "model": "small"}
    big = {"tokens": 7, "model": "big"}
    answers = [
        ask(feature="tokens", properties=small),  # makes the tokens meter's counter
        ask(consume=True, properties=small),  # the first: question's counters are made
        ask(consume=True, properties=big, id="q-1"),
        ask(consume=True, properties=big, id="q-1"),  # a duplicate
        ask(consume=True, properties=small, id="q-1"),  # a conflict
        ask(consume=True, properties={"tokens": 3, "model": "small"}, subject="u-9"),
    ]
    hold = api.post("/v1/reservations", json={"customer": "alice", "feature": "question"})
    assert hold.status_code == 200, hold.text
    answers += [
        ask(consume=True, properties=big),  # 3 used + 1 held + 1 = 5 > 4: refused
        ask(properties=small),  # a check without consume
        ask(consume=True, properties={"model": "small"}),  # no tokens: the ordinary path
    ]
    return answers


def rows(db: Database, workspace_id: int) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "events": "SELECT event_type, customer_id IS NOT NULL, subject, quantity, "
        "properties::text, content_hash FROM events WHERE workspace_id = :w ORDER BY seq",
        # The latest-key names its event by sequence: here by that event's content.
        "rollups": "SELECT m.key, r.group_key, r.count, r.sum, r.min, r.max, r.latest_value, "
        "e.content_hash, r.latest_key = split_part(r.latest_key, '|', 1) || '|' "
        "|| lpad(e.seq::text, 20, '0') FROM meter_rollups r JOIN meters m ON m.id = r.meter_id "
        "LEFT JOIN events e ON e.seq::text = ltrim(split_part(r.latest_key, '|', 2), '0') "
        "WHERE m.workspace_id = :w ORDER BY m.key, r.group_key",
        "counters": "SELECT m.key, c.kind, c.used FROM usage_counters c JOIN meters m "
        "ON m.id = c.meter_id WHERE m.workspace_id = :w ORDER BY m.key, c.kind",
        "stats": "SELECT SUM(accepted), SUM(duplicates), SUM(rejected), SUM(unmetered) "
        "FROM ingest_stats WHERE workspace_id = :w",
        "wallets": "SELECT balance, allocated FROM credit_wallets WHERE workspace_id = :w",
        "alerts": 'SELECT type, feature, "window", threshold FROM alerts '
        'WHERE workspace_id = :w ORDER BY feature, "window", threshold',
    }
    with db.read() as session:
        return {
            name: [tuple(r) for r in session.execute(text(sql), {"w": workspace_id})]
            for name, sql in queries.items()
        }


def test_the_function_writes_and_answers_as_the_ordinary_path(
    api: Api, other: Api, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses: list[str | None] = []
    real: Callable[..., onecall.Answer | None] = onecall.consume

    def spy(*args: Any, **kwargs: Any) -> onecall.Answer | None:
        answer = real(*args, **kwargs)
        statuses.append(None if answer is None else answer.status)
        return answer

    monkeypatch.setattr(onecall, "consume", spy)
    with_function = scenario(api)
    monkeypatch.setattr(onecall, "ENABLED", False)
    without = scenario(other)

    assert statuses == [None, "ok", None, None, "ok", "refused", None]
    assert with_function == without
    assert [status for status, _ in with_function] == [200, 200, 200, 200, 409, 200, 200, 200, 200]
    refused = with_function[6][1]
    assert (refused["allowed"], refused["reason"]) == (False, "limit_exceeded")
    assert refused["limits"][0]["held"] == "1"
    found, expected = rows(db, api.workspace_id), rows(db, other.workspace_id)
    assert found == expected
    assert found["stats"] == [(3, 0, 0, 0)]  # a consume answered 409 stores nothing
    assert [row[:3] for row in found["counters"]] == [
        ("question", "day", Decimal(3)),
        ("question", "month", Decimal(3)),
        ("tokens", "day", Decimal(15)),
    ]
    assert ("big", "", 1) in [row[:3] for row in found["rollups"]]
    assert all(row[-2] is not None and row[-1] for row in found["rollups"])
    assert found["alerts"], "the consume crossing half the day's limit raised its alert"
