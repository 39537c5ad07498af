"""The client's own tests: this package and httpx only, against a real Meterline.

The server is another program here: ``METERLINE_SERVER_BIN`` names its ``meterline``
command (the server's test suite sets it when it runs these tests in a venv that has
only this client installed); it is started as ``meterline serve`` on a free port.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import meterline_client

KEY = "ml_" + secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    command = os.environ.get("METERLINE_SERVER_BIN")
    if not command:
        pytest.fail("set METERLINE_SERVER_BIN to a `meterline` command (the server)")
    folder = Path(tempfile.mkdtemp(prefix="meterline-client-"))
    port = free_port()
    process = subprocess.Popen(
        [command, "serve", "--port", str(port), "--database-url", f"sqlite:///{folder}/c.db"],
        env={**os.environ, "METERLINE_BOOTSTRAP_KEY": KEY, "METERLINE_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("meterline serve did not start")
        time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def admin(server: str) -> Iterator[meterline_client.Client]:
    with meterline_client.Client(api_key=KEY, base_url=server) as client:
        yield client


@pytest.fixture
def ingest_key(admin: meterline_client.Client) -> str:
    key: str = admin.post("/v1/api-keys", {"name": "backend", "scopes": ["ingest"]})["key"]
    return key
