"""A period's statement: base fees prorated by days, each feature rated, the total.
Pure: the caller measures the usage; nothing here reads a clock or a database.

Base fees (SPEC §3): each plan in force over part of the period is charged
``fee * days / days_in_period``, where ``days`` runs from the local date its part starts
to the local date it ends (so a plan changed on the 15th is the old plan's up to the
14th and the new plan's from the 15th), and ``days_in_period`` is the length of the
whole period, even when the subscription starts or ends inside it.

Usage is priced by the plan in force at the end of the period (its included units,
prices and minimums), over the whole period: a plan change mid-period re-prices the
period's usage, it does not split it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from meterline.kit.decimals import CONTEXT, ZERO
from meterline.kit.periods import local_days
from meterline.plans.schemas import PlanFields
from meterline.pricing.rating import rate, round_money


@dataclass(frozen=True)
class Part:
    """One plan over ``[start, end)`` of the period."""

    plan: str
    fields: PlanFields
    start: datetime
    end: datetime


@dataclass(frozen=True)
class FeeLine:
    plan: str
    description: str
    start: datetime
    end: datetime
    days: int
    period_days: int
    amount: Decimal


@dataclass(frozen=True)
class UsageLine:
    feature: str
    unit: str | None
    used: Decimal
    included: Decimal
    billable: Decimal
    amount: Decimal
    priced: bool  # the plan prices it (an invoice line), or only meters or limits it


@dataclass(frozen=True)
class Statement:
    start: datetime
    end: datetime
    plan: str
    currency: str
    fees: tuple[FeeLine, ...]
    usage: tuple[UsageLine, ...]

    @property
    def base_fee(self) -> Decimal:
        return _sum(line.amount for line in self.fees)

    @property
    def total(self) -> Decimal:
        """The sum of the rounded lines."""
        return CONTEXT.add(self.base_fee, _sum(line.amount for line in self.usage))


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for amount in amounts:
        total = CONTEXT.add(total, amount)
    return total


def _day(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%b} {local.day}"


def base_fees(
    parts: Sequence[Part], full: tuple[datetime, datetime], zone: ZoneInfo, currency: str
) -> tuple[FeeLine, ...]:
    """One line per plan with a fee, prorated by local days against the whole period."""
    period_days = max(1, local_days(full[0], full[1], zone))
    lines = []
    for part in parts:
        days = local_days(part.start, part.end, zone)
        fee = part.fields.base_fee
        if fee == 0 or part.start >= part.end:
            continue
        amount = fee if days >= period_days else CONTEXT.divide(fee * days, period_days)
        lines.append(
            FeeLine(
                plan=part.plan,
                description=(
                    f"{part.fields.name} ({_day(part.start, zone)} \N{EN DASH} "
                    f"{_day(part.end, zone)})"
                ),
                start=part.start,
                end=part.end,
                days=days,
                period_days=period_days,
                amount=round_money(amount, currency),
            )
        )
    return tuple(lines)


def statement(
    parts: Sequence[Part],
    full: tuple[datetime, datetime],
    zone: ZoneInfo,
    used: Mapping[str, Decimal],
    units: Mapping[str, str | None],
) -> Statement:
    """The period ``[parts[0].start, parts[-1].end)``: ``used`` maps each feature of the
    last plan to what its meter measured over the period (missing: nothing)."""
    last = parts[-1]
    currency = last.fields.currency
    lines = []
    for key, feature in last.fields.features.items():
        rated = rate(feature, used.get(key, ZERO), currency)
        lines.append(
            UsageLine(
                feature=key,
                unit=units.get(key),
                used=rated.used,
                included=rated.included,
                billable=rated.billable,
                amount=rated.amount,
                priced=feature.price is not None,
            )
        )
    return Statement(
        start=parts[0].start,
        end=last.end,
        plan=last.plan,
        currency=currency,
        fees=base_fees(parts, full, zone, currency),
        usage=tuple(lines),
    )
