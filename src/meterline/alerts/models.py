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
    """A threshold crossed (SPEC §1): ``usage.threshold_reached`` and
    ``usage.limit_reached`` (a share of a limit, once per threshold and window: the
    ``dedupe_key`` is unique), ``credits.low`` and ``credits.depleted`` (once per
    crossing). ``data`` carries the numbers."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_workspace", "workspace_id", "id"),
        Index("ix_alerts_dedupe", "workspace_id", "dedupe_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[Decimal | None] = mapped_column(DecimalText())
    feature: Mapped[str | None] = mapped_column(String(100))
    window: Mapped[str | None] = mapped_column(String(10))
    window_start: Mapped[datetime | None]
    dedupe_key: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
