"""The background-work process that ``meterline serve`` starts, watches and restarts.

Background jobs (billing cycles, alert evaluation, webhook deliveries, sweeps) run in a
``meterline worker`` process of their own by default, so their CPU never competes with
requests for the interpreter lock. The worker dies with its server (Linux's
parent-death signal, and a check of its parent in the worker's loop), is started again
after a crash (with a pause that grows to ``MAX_PAUSE`` while it keeps failing), and is
stopped with SIGTERM — it ends after the job at hand — when the server stops
(``supervised`` makes sure the server waits for that, SIGTERM to the server included).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("meterline")

PARENT_ENV = "METERLINE_WORKER_PARENT"  # the worker stops when its parent is gone
MAX_PAUSE = 30.0
STOP_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the loop checks
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class WorkerSupervisor:
    """Keeps one ``meterline worker`` running for ``database_url`` until ``close``."""

    def __init__(self, database_url: str) -> None:
        self._command = [sys.executable, "-m", "meterline", "worker", "--quiet"]
        self._env = {
            **os.environ,
            "METERLINE_DATABASE_URL": database_url,
            PARENT_ENV: str(os.getpid()),
        }
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._thread = threading.Thread(target=self._watch, name="meterline-worker", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def _start(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            self._process = subprocess.Popen(
                self._command, env=self._env, preexec_fn=_die_with_parent
            )
            self.starts += 1
            return self._process

    def _watch(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            process = self._start()
            if process is None:
                return
            started = time.monotonic()
            code = process.wait()
            if self._stop.is_set():
                return
            if time.monotonic() - started > MAX_PAUSE:
                pause = 1.0  # it ran a good while: this is a new failure
            log.error("the background worker stopped (exit %s); restarting in %.0fs", code, pause)
            self._stop.wait(pause)
            pause = min(pause * 2, MAX_PAUSE)

    def close(self) -> None:
        """Stop the worker (it finishes the job at hand) and stop watching."""
        with self._lock:
            self._stop.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(timeout=5)


class _Terminated(BaseException):
    """SIGTERM, raised in the server's main thread so that its worker stops first."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


@contextlib.contextmanager
def supervised(database_url: str) -> Iterator[WorkerSupervisor]:
    """A worker for ``database_url`` while the block runs the server, stopped — and
    waited for — before the process ends, however it ends.

    uvicorn answers SIGTERM with a graceful shutdown, then raises the signal again under
    the handler it found; under the default one the process would end on the spot,
    before any ``finally``, and leave its worker to finish alone (or, in a container, to
    be killed mid-job with the rest of it). The handler it finds here raises instead;
    once the worker has stopped, the process ends by SIGTERM as it would have. A second
    SIGTERM while the worker finishes ends the server at once (and the worker then gets
    its parent-death signal).
    """
    previous = signal.getsignal(signal.SIGTERM)
    terminated = False
    supervisor: WorkerSupervisor | None = None
    try:
        signal.signal(signal.SIGTERM, _terminated)  # from serve's main thread
        supervisor = WorkerSupervisor(database_url)
        yield supervisor
    except _Terminated:
        terminated = True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if supervisor is not None:
            supervisor.close()
    if terminated:
        signal.raise_signal(signal.SIGTERM)


def parent_gone() -> bool:
    """In a supervised worker: whether the server that started it has gone."""
    parent = os.environ.get(PARENT_ENV)
    return parent is not None and os.getppid() != int(parent)
