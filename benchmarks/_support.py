"""Shared by the benchmarks: a fresh database, a real `meterline serve`, percentiles."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import make_url

METERLINE = str(Path(sys.executable).parent / "meterline")
# METERLINE_BENCH_QUICK=1: every benchmark at a small scale, to prove it runs (the README
# test does this); its figures then mean nothing.
QUICK = os.environ.get("METERLINE_BENCH_QUICK") == "1"


def size(full: int, quick: int) -> int:
    """A default size: ``full`` for a real run, ``quick`` under METERLINE_BENCH_QUICK=1."""
    return quick if QUICK else full


PG_SERVER = os.environ.get(
    "METERLINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """An empty database URL for one run, removed afterwards."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
        try:
            yield f"sqlite:///{folder / 'bench.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    server = make_url(PG_SERVER)
    name = f"meterline_bench_{uuid.uuid4().hex[:10]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server(tuple[str, str]):
    """A running `meterline serve`: unpacks as ``(base URL, admin key)``, as every
    benchmark uses it; ``pid`` is the serve process (with ``--workers N`` its children
    serve the requests: see ``process_tree``)."""

    pid: int

    def __new__(cls, base: str, key: str, pid: int) -> Server:
        server = super().__new__(cls, (base, key))
        server.pid = pid
        return server

    @property
    def base(self) -> str:
        return self[0]

    @property
    def key(self) -> str:
        return self[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``); gone ones are left out."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except FileNotFoundError:
            continue
        found.append(current)
        for task in tasks:
            with suppress(FileNotFoundError):
                queue += [int(child) for child in (task / "children").read_text().split()]
    return found


@contextmanager
def serve(
    database_url: str,
    key: str | None = None,
    workers: int = 1,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`meterline serve` on a free port; yields a ``Server``: (base URL, admin key), and
    the process id. Pass the key of a running server to start a second process on the
    same database; ``extra`` arguments (``--demo``) and ``env`` settings go to the
    process."""
    key = key or "ml_" + secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "METERLINE_BOOTSTRAP_KEY": key,
        "METERLINE_LOG_LEVEL": "warning",
        **(env or {}),
    }
    process = subprocess.Popen(
        [
            METERLINE,
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--workers",
            str(workers),
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("meterline serve did not start")
            time.sleep(0.1)
        yield Server(base, key, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def worker(database_url: str) -> Iterator[None]:
    """`meterline worker` on the database (background jobs in a process of their own)."""
    process = subprocess.Popen(
        [METERLINE, "worker", "--database-url", database_url],
        env={**os.environ, "METERLINE_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)
