from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class Alert(Base):
    """A threshold crossed (SPEC §1): ``credits.low``, ``credits.depleted``, and — with
    the webhooks issue — usage thresholds. Recorded once per crossing, in the same
    transaction as the change that crossed it; ``data`` carries the numbers."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_workspace", "workspace_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[Decimal | None] = mapped_column(DecimalText())
    window_start: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
