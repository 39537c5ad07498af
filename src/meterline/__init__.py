"""Meterline: usage metering, real-time limits, credits and usage-based billing.

``meterline.Meterline`` is library mode (the engine in-process); ``meterline.Client`` and
``meterline.AsyncClient`` speak to a Meterline server; the exceptions of both are here.

The client lives in its own light distribution, ``meterline-client`` (import name
``meterline_client``, httpx only), which this package depends on: ``meterline.Client`` is
``meterline_client.Client``. ``meterline.MeterlineError`` is the root of both trees —
``meterline_client.MeterlineError``, from which the server's own errors
(``meterline.errors.MeterlineError``, what library mode raises) derive — so one
``except meterline.MeterlineError`` catches a failure in either mode.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from meterline.library import Meterline
    from meterline_client import AsyncClient, CheckResult, Client
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
    "Meterline": "meterline.library",
    "Client": "meterline_client",
    "AsyncClient": "meterline_client",
    "CheckResult": "meterline_client",
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
