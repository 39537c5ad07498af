"""What users import from `meterline`, pinned: a change here is a change for users."""

from __future__ import annotations

import meterline
import meterline_client
from meterline import errors


def test_all_is_pinned() -> None:
    assert meterline.__all__ == [
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
    for name in meterline.__all__:
        assert getattr(meterline, name) is not None


def test_the_client_is_the_light_distributions_and_one_root_catches_both_modes() -> None:
    assert meterline.Client is meterline_client.Client
    assert meterline.AsyncClient is meterline_client.AsyncClient
    assert meterline.MeterlineError is meterline_client.MeterlineError
    library_failure = errors.InsufficientCredits()
    assert isinstance(library_failure, meterline.MeterlineError)
    assert library_failure.error_code == "insufficient_credits"
    # The client's errors derive from no server class.
    for name in meterline_client.__all__:
        value = getattr(meterline_client, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert not any(c.__module__.startswith("meterline.") for c in value.__mro__), name
