from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base


class RateLimitState(Base):
    """One API key's request rate, shared by every process: the key's theoretical
    arrival time (GCRA) in microseconds since the epoch, and whether the last request
    was let through. One row per key, updated in place by one upsert per request, so
    nothing piles up (a deleted key takes its row with it)."""

    __tablename__ = "rate_limit_states"

    key_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    tat_us: Mapped[int] = mapped_column(BigInteger)  # UNLOGGED on PostgreSQL (migration 0010)
    allowed: Mapped[bool]
