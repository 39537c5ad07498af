from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.time import utc_now


class Job(Base):
    """Work to do at ``run_at``: the outbox of background work (SPEC §6).

    A row is written in the same transaction as the change that needs it, keyed so
    that writing it twice is one job (a subscription has one billing cycle, an invoice
    one finalization). A worker leases a due row by moving its ``run_at`` ahead, does
    the work, then deletes the row or moves ``run_at`` to the next time it is due."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_run_at", "run_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
