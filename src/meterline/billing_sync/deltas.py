"""What Stripe is sent for one series — one billing customer's usage of one meter — hour
by hour. Pure arithmetic: no I/O, no clock, no randomness (callers pass them in).

Stripe's meter events take whole numbers, and Stripe only ever adds them up. So a series
keeps two running totals: ``measured``, Meterline's exact usage accounted so far (in the
meter's raw units: seconds for a duration meter), and ``sent``, the whole units Stripe
holds (or is about to). Each time an hour's usage is read, its change moves ``measured``;
the series then owes Stripe ``floor(measured / divisor) - sent`` units, sent as one meter
event for that hour: the integer part of the running total's increase, the remainder
carried to the next change. Stripe's total is therefore Meterline's total rounded down,
always — never more, and nothing sent is ever negative.

A decrease (an event voided after its hour was reported) leaves ``sent`` above what is
owed. It is taken back by cancelling earlier meter events of the series (Stripe's meter
event adjustments cancel one event by its identifier within 24 hours of receiving it),
newest first and the changed hour's own first, then re-sending what the cancelled events
carried beyond the decrease. What no cancellable event covers stays over-reported: it
shows as ``excess`` and is absorbed by the series' next increases, never by a negative
value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

# Stripe cancels a meter event only within 24 hours of receiving it; a margin of an hour
# covers clocks and the time a cancellation waits in the queue.
CANCEL_WINDOW = timedelta(hours=23)


@dataclass(frozen=True)
class Event:
    """A meter event of the series, decided earlier and not cancelled."""

    id: str
    hour: datetime
    value: int
    received_at: datetime | None  # when Stripe took it; None: not yet sent


@dataclass(frozen=True)
class Change:
    """One hour's usage, as last accounted (``before``) and as the rollups say now."""

    hour: datetime
    before: Decimal
    after: Decimal


@dataclass(frozen=True)
class Send:
    hour: datetime
    value: int  # > 0


@dataclass(frozen=True)
class Cancel:
    event: Event


Action = Send | Cancel


@dataclass
class Series:
    measured: Decimal  # raw units accounted so far, every hour of the series
    sent: int  # whole units Stripe holds, or will once what is queued arrives
    divisor: Decimal = Decimal(1)  # raw units per reported unit

    def owed(self) -> int:
        """Whole units Stripe should hold: the running total rounded down (never < 0)."""
        return max(0, math.floor(self.measured / self.divisor))

    def excess(self) -> int:
        """Whole units Stripe holds beyond what is owed (decreases that came too late)."""
        return max(0, self.sent - self.owed())


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    # Per hour, the whole units its events now carry at Stripe (after this plan).
    hour_sent: dict[datetime, int] = field(default_factory=dict)


def cancellable(event: Event, now: datetime) -> bool:
    """Whether Stripe will still cancel the event: not yet sent (the cancellation
    follows it in the queue), or received less than ``CANCEL_WINDOW`` ago."""
    if event.value <= 0:
        return False
    return event.received_at is None or now - event.received_at < CANCEL_WINDOW


def plan(
    series: Series,
    changes: list[Change],
    events: list[Event],
    hour_sent: dict[datetime, int],
    now: datetime,
) -> Plan:
    """Account for ``changes`` (in any order; applied hour by hour) and say what to send.

    ``events`` are the series' live meter events (for cancelling); ``hour_sent`` the
    whole units each hour's events carry now. ``series`` is updated in place."""
    found = Plan(hour_sent=dict(hour_sent))
    live = sorted(events, key=lambda e: (e.received_at is None, e.received_at, e.id))
    for change in sorted(changes, key=lambda c: c.hour):
        if change.after < 0 or change.before < 0:
            raise ValueError("usage is never negative")
        series.measured += change.after - change.before
        owed = series.owed()
        if owed > series.sent:
            _send(found, series, change.hour, owed - series.sent)
        elif owed < series.sent:
            _take_back(found, series, change.hour, series.sent - owed, live, now)
    return found


def _send(found: Plan, series: Series, hour: datetime, value: int) -> None:
    found.actions.append(Send(hour, value))
    found.hour_sent[hour] = found.hour_sent.get(hour, 0) + value
    series.sent += value


def _take_back(
    found: Plan, series: Series, hour: datetime, over: int, live: list[Event], now: datetime
) -> None:
    """Take ``over`` units back: first from what this plan was about to send (newest
    first), then by cancelling the fewest newest events (the changed hour's first); what
    a cancelled event carried beyond the decrease is sent again, in its own hour."""
    for index in range(len(found.actions) - 1, -1, -1):
        action = found.actions[index]
        if over == 0:
            return
        if isinstance(action, Send):
            cut = min(over, action.value)
            found.hour_sent[action.hour] -= cut
            series.sent -= cut
            over -= cut
            if cut == action.value:
                del found.actions[index]
            else:
                found.actions[index] = Send(action.hour, action.value - cut)
    candidates = [e for e in live if cancellable(e, now)]
    candidates.sort(key=lambda e: (e.hour == hour, e.received_at is None, e.received_at, e.id))
    while over > 0 and candidates:
        event = candidates.pop()  # the changed hour's newest first
        live.remove(event)
        found.actions.append(Cancel(event))
        found.hour_sent[event.hour] = found.hour_sent.get(event.hour, 0) - event.value
        series.sent -= event.value
        over -= event.value
        if over < 0:  # it carried more than the decrease: the rest goes again
            _send(found, series, event.hour, -over)


def identifier(prefix: str, customer_id: int, meter_id: int, hour: datetime, revision: int) -> str:
    """The meter event's ``identifier``: one per (customer, meter, hour, revision) of an
    integration (``prefix`` is random per integration, so two Meterline databases
    reporting to one Stripe account never collide). At most 100 characters."""
    return f"{prefix}_{customer_id}_{meter_id}_{hour:%Y%m%d%H}_r{revision}"


def minor_units(amount: Decimal, exponent: int) -> int:
    """An amount already rounded to its currency, in the currency's minor unit."""
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more places than the currency's {exponent}")
    return int(scaled)


def retry_delay(attempt: int, retry_after: float | None, jitter: float) -> timedelta:
    """The wait after failed attempt ``attempt`` (1, 2, …): 2 s doubling to 15 minutes,
    plus ``jitter`` (a fraction, 0 to 0.2) of it; at least Stripe's ``Retry-After``."""
    base = min(MAX_RETRY_WAIT, 2.0 * 2 ** max(0, attempt - 1))
    return timedelta(seconds=max(base * (1 + jitter), retry_after or 0.0))


MAX_RETRY_WAIT = 15 * 60.0
