"""Load for the HTTP benchmarks: ``wrk`` for throughput, and an open-loop generator of
our own for latency at a fixed rate.

The open loop writes raw HTTP/1.1 on kept-alive asyncio connections (no client objects
per request) and measures each request from the moment it was *due*, so a server that
falls behind cannot hide its queue (no coordinated omission). It costs some tens of
microseconds of CPU per request, so it can drive a few thousand requests a second.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Answer = Callable[[bytes, bytes], bool]  # (head, body) → whether the answer is right


def http_request(
    method: str, path: str, host: str, key: str | None = None, body: bytes | None = None
) -> bytes:
    """One raw HTTP/1.1 request (kept alive)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def ok_status(head: bytes, _body: bytes) -> bool:
    return head.startswith(b"HTTP/1.1 200")


@dataclass
class Run:
    timings: list[float]  # seconds from each request's due time to its answer
    achieved: float  # requests/s actually completed
    wrong: int  # answers ``answer`` refused


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[bytes, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


async def _open_loop(
    base: str,
    requests: Sequence[bytes],
    rate: float,
    seconds: float,
    answer: Answer,
    connections: int,
    warm: int,
) -> Run:
    host, port = base.removeprefix("http://").split(":")
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, int(port)))
    wrong = 0
    for i in range(warm):  # e.g. each customer's counters made before timing starts
        connection = await idle.get()
        await _exchange(*connection, requests[i % len(requests)])
        idle.put_nowait(connection)
    timings: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        nonlocal wrong
        connection = await idle.get()
        try:
            head, body = await _exchange(*connection, requests[(warm + i) % len(requests)])
        finally:
            idle.put_nowait(connection)
        timings.append(loop.time() - due)
        if not answer(head, body):
            wrong += 1

    total = int(rate * seconds)
    start = loop.time() + 0.1
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    achieved = total / (loop.time() - start)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return Run(timings, achieved, wrong)


def open_loop(
    base: str,
    requests: Sequence[bytes],
    rate: float,
    seconds: float,
    answer: Answer = ok_status,
    *,
    connections: int = 64,
    warm: int = 0,
) -> Run:
    """``rate`` requests a second for ``seconds``, cycling through ``requests`` (after
    ``warm`` untimed ones), over ``connections`` kept-alive connections."""
    return asyncio.run(_open_loop(base, requests, rate, seconds, answer, connections, warm))


@dataclass
class WrkRun:
    rate: float  # requests/s
    requests: int  # answered
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx answers


_WRK_POSTS = """
local counter = 0
prefix = ""  -- a global: setup() sets it per thread (a local would stay "" in every thread)
local headers = {["Authorization"] = "Bearer KEY", ["Content-Type"] = "application/json"}
function setup(thread)
  thread:set("prefix", string.format("%s-%d", "RUN", math.random(1, 1000000000)))
end
function request()
  counter = counter + 1
  local body = string.format('BODY', prefix, counter, ARGUMENTS)
  return wrk.format("POST", "PATH", headers, body)
end
"""


def wrk_posts(path: str, key: str, body: str, arguments: str) -> str:
    """A wrk Lua script that POSTs JSON to ``path`` with ``key``, a new id each time:
    ``body`` is a Lua format string whose first two slots (``%s-%d``) make that id (a
    prefix per run and thread, a counter), ``arguments`` the Lua expressions for the
    rest (``counter`` is in scope)."""
    return (
        _WRK_POSTS.replace("KEY", key)
        .replace("RUN", uuid.uuid4().hex[:8])
        .replace("BODY", body)
        .replace("ARGUMENTS", arguments)
        .replace("PATH", path)
    )


def wrk(url: str, seconds: float, connections: int, script: str | None = None) -> WrkRun:
    """One ``wrk`` run (two threads) against ``url``; ``script``: Lua for the requests."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    with tempfile.TemporaryDirectory() as folder:
        if script is not None:
            path = Path(folder) / "load.lua"
            path.write_text(script)
            args += ["-s", str(path)]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    answered = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkRun(
        float(rate.group(1)) if rate else float("nan"),
        int(answered.group(1)) if answered else 0,
        _latency(out, "50%"),
        _latency(out, "99%"),
        int(bad.group(1)) if bad else 0,
    )


def _latency(out: str, which: str) -> float:
    found = re.search(rf"{which}\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return float(found.group(1)) * scale[found.group(2)] if found else float("nan")
