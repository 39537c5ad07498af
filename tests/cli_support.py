"""Running the real `meterline` command and `meterline serve` process."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

METERLINE = str(Path(sys.executable).parent / "meterline")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`meterline ARGS` as a user types it; returns the finished process."""
    return subprocess.run(
        [METERLINE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def key_after(output: str, heading: str) -> str:
    """The key printed on the line after ``heading``."""
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(heading))
    return lines[index + 1].strip()


@dataclass
class Server:
    base: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log.read_text()


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Server]:
    """`meterline serve ARGS --port <free>`, stopped at the end; ready once /healthz answers."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="meterline-serve-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [METERLINE, "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    server = Server(f"http://127.0.0.1:{port}", log, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{server.output()}")
            try:
                if httpx2.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"serve did not start in 30 s:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@contextmanager
def serving_twice(
    database_url: str, env: dict[str, str] | None = None
) -> Iterator[tuple[httpx2.Client, list[httpx2.Client]]]:
    """Two `meterline serve` processes on one database with a known admin key: an admin
    client (on the first) and a client for each process, all closed at the end. ``env``:
    more settings for both."""
    key = "ml_" + secrets.token_urlsafe(32)
    env = {**(env or {}), "METERLINE_BOOTSTRAP_KEY": key}
    headers = {"Authorization": f"Bearer {key}"}
    with (
        serving("--database-url", database_url, env=env) as first,
        serving("--database-url", database_url, env=env) as second,
        httpx2.Client(base_url=first.base, headers=headers, timeout=30) as admin,
        httpx2.Client(base_url=first.base, headers=headers, timeout=60) as one,
        httpx2.Client(base_url=second.base, headers=headers, timeout=60) as two,
    ):
        yield admin, [one, two]
