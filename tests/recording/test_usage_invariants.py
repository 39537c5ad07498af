"""A stateful property test of what usage counts: after any mix of events, consumes,
holds, settlements, releases, voids and limit resets — over days, for an organization
and its member — each meter's usage equals the aggregation of its counted, non-voided
events, each limit's `used` and `held` are what the model says, and every decision is
the model's (so no path lets a hard limit be passed by a decision). SQLite and
PostgreSQL, through the real app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from limits_support import meter
from meterline.kit.time import Clock, clock
from support import Api

START = datetime(2026, 5, 4, 22, 0, tzinfo=UTC)
DAY_MAX = Decimal(100)
CALLS_MAX = Decimal(6)
KINDS = ("a", "b", "c")  # the calls meter counts kinds a and b only


@dataclass
class Recorded:
    id: str
    meter: str  # "tok" or "calls"
    value: Decimal  # what it added to its meter (0 when its filter leaves it out)
    at: datetime
    voided: bool = False


@dataclass
class Model:
    events: list[Recorded] = field(default_factory=list)
    holds: dict[str, tuple[Decimal, datetime]] = field(default_factory=dict)  # amount, expiry
    reset_at: dict[str, datetime] = field(default_factory=dict)  # meter → day reset moment

    def day(self, now: datetime) -> tuple[datetime, datetime]:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)

    def used(self, meter: str, now: datetime) -> Decimal:
        start, end = self.day(now)
        since = max(start, self.reset_at.get(meter, start))
        return sum(
            (
                e.value
                for e in self.events
                if e.meter == meter and not e.voided and since <= e.at < end
            ),
            Decimal(0),
        )

    def held(self, now: datetime) -> Decimal:
        """What live holds hold: a hold stops counting at its TTL."""
        return sum((a for a, until in self.holds.values() if until > now), Decimal(0))

    def total(self, meter: str) -> Decimal:
        return sum((e.value for e in self.events if e.meter == meter and not e.voided), Decimal(0))


runs = count()


def machine(api: Api, time: Clock) -> type[RuleBasedStateMachine]:
    class Usage(RuleBasedStateMachine):
        stored = Bundle("stored")
        held = Bundle("held")

        @initialize()
        def customers(self) -> None:
            self.run = next(runs)
            self.model = Model()
            self.org = f"org{self.run}"
            self.member = f"mem{self.run}"
            ids = count()
            self.ids = (f"r{self.run}-{n}" for n in ids)
            time.set(START)
            assert api.post("/v1/customers", json={"external_id": self.org}).status_code == 201
            body = {"external_id": self.member, "parent": self.org}
            assert api.post("/v1/customers", json=body).status_code == 201
            sub = {"customer": self.org, "plan": "plan", "start_at": "2026-05-01T00:00:00Z"}
            assert api.post("/v1/subscriptions", json=sub).status_code == 201

        def now(self) -> datetime:
            return time.now

        def who(self, member: bool) -> str:
            return self.member if member else self.org

        @rule(minutes=st.integers(1, 600))
        def time_passes(self, minutes: int) -> None:
            time.set(time.now + timedelta(minutes=minutes))

        @rule(target=stored, amount=st.integers(0, 60), member=st.booleans())
        def tokens_arrive(self, amount: int, member: bool) -> str:
            event_id = next(self.ids)
            body = {
                "id": event_id,
                "type": "tok",
                "customer": self.who(member),
                "quantity": str(amount),
                "timestamp": self.now().isoformat(),
            }
            r = api.post("/v1/events", json=body)
            assert r.json()["accepted"] == 1, r.text
            self.model.events.append(Recorded(event_id, "tok", Decimal(amount), self.now()))
            return event_id

        @rule(target=stored, kind=st.sampled_from(KINDS), member=st.booleans())
        def a_call_arrives(self, kind: str, member: bool) -> str:
            event_id = next(self.ids)
            body = {
                "id": event_id,
                "type": "call",
                "customer": self.who(member),
                "timestamp": self.now().isoformat(),
                "properties": {"kind": kind},
            }
            r = api.post("/v1/events", json=body).json()
            assert r["accepted"] == 1, r
            assert r["unmetered"] == (1 if kind == "c" else 0), r  # said, never silent
            value = Decimal(1) if kind in ("a", "b") else Decimal(0)
            self.model.events.append(Recorded(event_id, "calls", value, self.now()))
            return event_id

        @rule(target=stored, amount=st.integers(0, 60), member=st.booleans())
        def consume_tokens(self, amount: int, member: bool) -> str:
            event_id = next(self.ids)
            body = {
                "customer": self.who(member),
                "feature": "tok",
                "quantity": str(amount),
                "consume": True,
                "id": event_id,
            }
            r = api.post("/v1/check", json=body)
            assert r.status_code == 200, r.text
            held = self.model.held(self.now())
            expected = self.model.used("tok", self.now()) + held + amount <= DAY_MAX
            assert r.json()["allowed"] is expected, (
                r.json(),
                self.model.used("tok", self.now()),
                held,
            )
            if expected:
                self.model.events.append(Recorded(event_id, "tok", Decimal(amount), self.now()))
            return event_id

        @rule(target=stored, kind=st.sampled_from(KINDS))
        def consume_a_call(self, kind: str) -> str:
            event_id = next(self.ids)
            body = {
                "customer": self.org,
                "feature": "calls",
                "consume": True,
                "id": event_id,
                "properties": {"kind": kind},
            }
            r = api.post("/v1/check", json=body)
            if kind == "c":  # the meter would not count it: refused, never free
                assert (r.status_code, r.json()["code"]) == (422, "not_counted"), r.text
                return event_id
            expected = self.model.used("calls", self.now()) + 1 <= CALLS_MAX
            assert r.json()["allowed"] is expected, r.json()
            if expected:
                self.model.events.append(Recorded(event_id, "calls", Decimal(1), self.now()))
            return event_id

        @rule(target=held, amount=st.integers(1, 50))
        def hold_tokens(self, amount: int) -> str:
            body = {
                "customer": self.org,
                "feature": "tok",
                "quantity": str(amount),
                "ttl_seconds": 86_400,
            }
            answer = api.post("/v1/reservations", json=body)
            assert answer.status_code == 200, answer.text
            r = answer.json()
            held = self.model.held(self.now())
            expected = self.model.used("tok", self.now()) + held + amount <= DAY_MAX
            assert r["allowed"] is expected, r
            if expected:
                until = self.now() + timedelta(days=1)
                self.model.holds[r["id"]] = (Decimal(amount), until)
                return str(r["id"])
            return ""

        @rule(hold=consumes(held), amount=st.integers(0, 80))
        def settle(self, hold: str, amount: int) -> None:
            if not hold:
                return
            r = api.post(f"/v1/reservations/{hold}/settle", json={"quantity": str(amount)})
            assert r.status_code == 200, r.text
            del self.model.holds[hold]
            if amount:
                self.model.events.append(Recorded(hold, "tok", Decimal(amount), self.now()))

        @rule(hold=consumes(held))
        def release(self, hold: str) -> None:
            if not hold:
                return
            assert api.post(f"/v1/reservations/{hold}/release").status_code == 200
            del self.model.holds[hold]

        @rule(event_id=stored)
        def void(self, event_id: str) -> None:
            r = api.post(f"/v1/events/{event_id}/void")
            found = [e for e in self.model.events if e.id == event_id]
            if not found:  # a refused consume stored nothing
                assert r.status_code == 404, r.text
                return
            assert r.status_code == 200, r.text
            found[0].voided = True

        @rule(meter=st.sampled_from(["tok", "calls"]))
        def reset_the_day(self, meter: str) -> None:
            body = {"feature": meter, "window": "day"}
            r = api.post(f"/v1/customers/{self.org}/limits/reset", json=body)
            assert r.status_code == 200, r.text
            self.model.reset_at[meter] = self.now()

        @invariant()
        def usage_is_the_counted_non_voided_events(self) -> None:
            if not hasattr(self, "model"):
                return
            for key in ("tok", "calls"):
                params = {
                    "customer": self.org,
                    "from": "2026-05-01T00:00:00Z",
                    "to": (self.now() + timedelta(seconds=1)).isoformat(),
                }
                rows = api.get(f"/v1/meters/{key}/usage", params=params).json()["data"]
                value = Decimal(rows[0]["value"]) if rows else Decimal(0)
                assert value == self.model.total(key), (key, rows, self.model.total(key))

        @invariant()
        def limits_say_what_the_model_says(self) -> None:
            if not hasattr(self, "model"):
                return
            found = api.get(f"/v1/customers/{self.member}/entitlements").json()
            limits = {f["feature"]: f["limits"][0] for f in found["features"]}
            now = self.now()
            held = self.model.held(now)
            assert Decimal(limits["tok"]["used"]) == self.model.used("tok", now), limits["tok"]
            assert Decimal(limits["tok"]["held"]) == held
            assert Decimal(limits["calls"]["used"]) == self.model.used("calls", now)

    return Usage


def test_usage_limits_and_decisions_follow_the_model(api: Api) -> None:
    meter(api, "tok", "sum")
    meter(api, "calls", event_type="call", filter={"kind": ["a", "b"]})
    limit = {"window": "day", "enforcement": "hard"}
    body = {
        "key": "plan",
        "name": "Plan",
        "currency": "USD",
        "features": {
            "tok": {"limits": [{**limit, "max": str(DAY_MAX)}]},
            "calls": {"limits": [{**limit, "max": str(CALLS_MAX)}]},
        },
    }
    assert api.post("/v1/plans", json=body).status_code == 201
    time = Clock(START)
    with clock(time):
        run_state_machine_as_test(
            lambda: machine(api, time)(),
            settings=settings(
                max_examples=25,
                stateful_step_count=30,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            ),
        )
