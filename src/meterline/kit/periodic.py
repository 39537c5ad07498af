"""A function run every few seconds on a thread of its own, until closed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("meterline")


class Periodic:
    """Runs ``work`` every ``interval_seconds`` (after the first interval). A failure is
    logged and the next run tries again: background work must never stop the server."""

    def __init__(self, name: str, interval_seconds: float, work: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval_seconds
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"meterline-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._work()
            except Exception:
                log.exception("%s failed; it runs again in %ss", self._name, self._interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
