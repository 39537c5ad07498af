"""Cursor paging: ``?limit=`` (default 50, max 1000) and an opaque ``?after=`` cursor.

Lists are keyset-paged on a unique, ordered key: a cursor holds the last key handed
out, so pages stay stable while rows are added.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

from meterline.errors import InvalidCursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

T = TypeVar("T")
K = TypeVar("K", int, str)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: int | str) -> str:
    """An opaque, URL-safe cursor for the position after ``key``."""
    return base64.urlsafe_b64encode(orjson.dumps({"k": key})).decode().rstrip("=")


def cursor_key(after: str | None, kind: type[K]) -> K | None:
    """The key a cursor holds (None for the first page); 400 ``invalid_cursor`` if forged."""
    if after is None:
        return None
    try:
        position = orjson.loads(base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor() from exc
    key = position.get("k") if isinstance(position, dict) else None
    if type(key) is not kind:
        raise InvalidCursor()
    return key


def make_page(rows: Sequence[T], limit: int, key: Callable[[T], int | str]) -> Page[T]:
    """A page from ``limit + 1`` fetched rows: the extra row only says there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items, encode_cursor(key(items[-1])) if more and items else None)
