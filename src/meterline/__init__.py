"""Meterline: usage metering, real-time limits, credits and usage-based billing."""

__version__ = "0.1.0"

__all__ = ["__version__"]
