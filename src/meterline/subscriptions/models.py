from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meterline.db import Base, BigIntPK
from meterline.kit.time import utc_now


class Subscription(Base):
    """A customer on plans from ``start_at`` until ``end_at`` (open when null).

    Which plan applies when is kept as phases: a change ends one phase and starts the
    next, so past periods keep the plan they ran on."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_customer_id", "customer_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    billing_anchor: Mapped[str] = mapped_column(String(20))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    phases: Mapped[list[SubscriptionPhase]] = relationship(
        order_by="SubscriptionPhase.start_at", lazy="selectin", cascade="all, delete-orphan"
    )


class SubscriptionPhase(Base):
    """One plan over ``[start_at, end_at)``; periods step from ``anchor_at``."""

    __tablename__ = "subscription_phases"
    __table_args__ = (Index("ix_subscription_phases_subscription_id", "subscription_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    plan_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("plans.id"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime | None]
    anchor_at: Mapped[datetime]
