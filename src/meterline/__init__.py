"""Meterline: usage metering, real-time limits, credits and usage-based billing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from meterline.library import Meterline

__all__ = ["Meterline", "__version__"]


def __getattr__(name: str) -> Any:
    """``meterline.Meterline`` without loading the engine on ``import meterline``."""
    if name == "Meterline":
        from meterline.library import Meterline

        return Meterline
    raise AttributeError(f"module 'meterline' has no attribute {name!r}")
