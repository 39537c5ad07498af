"""Meterline: usage metering, real-time limits, credits and usage-based billing.

``meterline.Meterline`` is library mode (the engine in-process); ``meterline.Client`` and
``meterline.AsyncClient`` speak to a Meterline server; the exceptions of both are here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from meterline.errors import MeterlineError
    from meterline.library import Meterline
    from meterline.sdk.client import AsyncClient, CheckResult, Client
    from meterline.sdk.errors import (
        APIError,
        AuthenticationError,
        BufferFull,
        ConflictError,
        ConnectionFailed,
        InsufficientCredits,
        LimitExceeded,
        NotFoundError,
        RateLimitError,
        ServerError,
        ValidationError,
    )

_WHERE = {
    "Meterline": "meterline.library",
    "MeterlineError": "meterline.errors",
    "Client": "meterline.sdk.client",
    "AsyncClient": "meterline.sdk.client",
    "CheckResult": "meterline.sdk.client",
    **dict.fromkeys(
        (
            "APIError",
            "AuthenticationError",
            "BufferFull",
            "ConflictError",
            "ConnectionFailed",
            "InsufficientCredits",
            "LimitExceeded",
            "NotFoundError",
            "RateLimitError",
            "ServerError",
            "ValidationError",
        ),
        "meterline.sdk.errors",
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
    "LimitExceeded",
    "Meterline",
    "MeterlineError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Loaded on first use: ``import meterline`` stays light (no engine, no HTTP client)."""
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'meterline' has no attribute {name!r}")
