"""A small in-process cache whose entries expire: for hot lookups that may lag a few
seconds behind the database (API keys, workspace settings), never for money."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The live entry, or None (nothing is loaded)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        value = load()
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        now = time.monotonic()
        if self.ttl > 0:
            # Each entry lives between 3/4 of the TTL and all of it, so entries loaded
            # together (a warm-up, a restart) do not all expire, and reload, together.
            expires = now + self.ttl * (0.75 + 0.25 * random.random())
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (expires, value)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
