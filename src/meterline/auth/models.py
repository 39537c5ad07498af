from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class ApiKey(Base):
    """A workspace's API key. The secret itself is never stored, only its SHA-256.

    Its request rate (``rate_limit`` in the API): ``rate_limit_per_second`` and
    ``rate_limit_burst`` set together (the key's own rate), or
    ``rate_limit_unlimited`` (never limited), or none of them (the server-wide
    default, METERLINE_RATE_LIMIT_*, applies)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]]
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    rate_limit_per_second: Mapped[Decimal | None] = mapped_column(DecimalText())
    rate_limit_burst: Mapped[int | None]
    rate_limit_unlimited: Mapped[bool] = mapped_column(default=False, server_default=false())
