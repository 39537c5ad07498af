"""The FastAPI dependency of the Python client, under its historical name: this is
``meterline_client.fastapi`` (``require_feature``, ``install``, ``FeatureDenied``)."""

from __future__ import annotations

from meterline_client.fastapi import FeatureDenied, install, require_feature

__all__ = ["FeatureDenied", "install", "require_feature"]
