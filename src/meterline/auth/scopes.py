from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    """What a key may do. ``admin`` may do everything."""

    ADMIN = "admin"
    INGEST = "ingest"  # send events, check and consume
    READ = "read"  # read customers and usage
