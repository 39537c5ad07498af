"""Meterline's Python client: usage, checks and reads over HTTP, with httpx only.

``Client`` (threads; a background thread sends tracked events in batches) and
``AsyncClient`` (asyncio) have the same verbs; ``meterline_client.fastapi`` has the
FastAPI dependency; ``meterline_client.errors`` draws the error tree.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from meterline_client._async import AsyncClient
    from meterline_client._core import CheckResult, Meter, NotCounted
    from meterline_client._sync import Client
    from meterline_client.errors import (
        APIError,
        AuthenticationError,
        BufferFull,
        ConflictError,
        ConnectionFailed,
        InsufficientCredits,
        InvalidQuantity,
        LimitExceeded,
        MeterlineError,
        NotFoundError,
        RateLimitError,
        ServerError,
        ValidationError,
    )

_WHERE = {
    "Client": "meterline_client._sync",
    "AsyncClient": "meterline_client._async",
    **dict.fromkeys(("CheckResult", "Meter", "NotCounted"), "meterline_client._core"),
    **dict.fromkeys(
        (
            "APIError",
            "AuthenticationError",
            "BufferFull",
            "ConflictError",
            "ConnectionFailed",
            "InsufficientCredits",
            "InvalidQuantity",
            "LimitExceeded",
            "MeterlineError",
            "NotFoundError",
            "RateLimitError",
            "ServerError",
            "ValidationError",
        ),
        "meterline_client.errors",
    ),
}

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BufferFull",
    "CheckResult",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "InsufficientCredits",
    "InvalidQuantity",
    "LimitExceeded",
    "Meter",
    "MeterlineError",
    "NotCounted",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Loaded on first use: ``import meterline_client.errors`` (which the server's error
    tree derives from) does not load httpx or start anything."""
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'meterline_client' has no attribute {name!r}")
