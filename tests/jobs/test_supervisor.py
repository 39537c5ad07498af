"""`meterline serve` runs background jobs in a `meterline worker` process of its own
(METERLINE_JOBS_MODE=process, the default), watched as real processes: exactly one
worker child delivers the webhooks; a worker killed with -9 is replaced and jobs go on;
a server killed with -9 leaves no orphan; on SIGTERM the worker finishes the job at
hand and serve ends after it. `thread` runs jobs in the serving process itself (no
child); `off` runs none in serve (no child), so they wait for a `meterline worker`.

The observable job is a webhook: a credit grant emits `credits.granted`, whose delivery
is a background job, and a real receiver on 127.0.0.1 records what arrives."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx2
import pytest
from sqlalchemy import or_, select

from cli_support import Server, run, serving
from meterline.db import Database
from meterline.jobs.models import Job
from meterline.kit.time import utc_now
from meterline.webhooks.models import WebhookDelivery
from webhooks_support import Receiver, receiving

pytestmark = pytest.mark.e2e

T = TypeVar("T")
POLL = "0.2"  # jobs_poll_seconds: the worker looks for due jobs five times a second
WORKER = ["-m", "meterline", "worker", "--quiet"]  # after the interpreter's path


def alive(pid: int) -> bool:
    """Whether ``pid`` is running (a zombie, exited but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The running processes that ``pid`` started (from any of its threads)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(FileNotFoundError, ProcessLookupError):
            found.update(int(child) for child in (task / "children").read_text().split())
    return sorted(child for child in found if alive(child))


def command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return []


def wait_for(found: Callable[[], T | None], seconds: float, what: str) -> T:
    """What ``found`` returns once it is not None (or False), polling; fails after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = found()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(0.05)


@dataclass
class Served:
    server: Server
    admin: httpx2.Client
    receiver: Receiver
    endpoint: str
    database_url: str

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def worker(self) -> int:
        """The one `meterline worker` process serve runs (waiting for it to start)."""

        def started() -> list[int] | None:  # a child just forked has not run the command yet
            found = children(self.pid)
            return found if found and all(command(pid)[1:] == WORKER for pid in found) else None

        found = wait_for(started, 10, "worker child")
        assert len(found) == 1
        return found[0]

    def grant(self) -> None:
        """Credits for acme: a `credits.granted` webhook to deliver in the background."""
        r = self.admin.post("/v1/customers/acme/credits/grants", json={"amount": "10"})
        assert r.status_code == 201, r.text

    def delivered(self, count: int, seconds: float = 10) -> None:
        wait_for(lambda: len(self.receiver.received) >= count, seconds, f"webhook #{count}")
        assert len(self.receiver.received) == count  # each delivered once

    def deliveries(self) -> list[tuple[str, int]]:
        """(status, attempts) of each delivery, as the API's delivery log shows them."""
        r = self.admin.get(f"/v1/webhook-endpoints/{self.endpoint}/deliveries")
        return [(d["status"], len(d["attempts"])) for d in r.json()["data"]]

    def idle(self) -> bool:
        """No job running (leased) and none due within the next seconds."""
        db = Database(self.database_url)
        try:
            with db.read() as session:
                busy = session.scalar(
                    select(Job.id)
                    .where(or_(Job.attempts > 0, Job.run_at <= utc_now() + timedelta(seconds=5)))
                    .limit(1)
                )
        finally:
            db.dispose()
        return busy is None


@contextmanager
def served(database_url: str, mode: str | None = None) -> Iterator[Served]:
    """`meterline serve` (in jobs mode ``mode``, else the default) with a webhook
    endpoint for `credits.granted` on a real receiver and a customer acme."""
    key = "ml_" + secrets.token_urlsafe(32)
    env = {
        "METERLINE_BOOTSTRAP_KEY": key,
        "METERLINE_JOBS_POLL_SECONDS": POLL,
        "METERLINE_WEBHOOKS_ALLOW_PRIVATE": "1",  # the receiver listens on 127.0.0.1
        "METERLINE_LOG_LEVEL": "warning",
    }
    if mode is not None:
        env["METERLINE_JOBS_MODE"] = mode
    headers = {"Authorization": f"Bearer {key}"}
    with (
        receiving() as receiver,
        serving("--database-url", database_url, env=env) as server,
        httpx2.Client(base_url=server.base, headers=headers, timeout=30) as admin,
    ):
        hook = {"url": receiver.url, "events": ["credits.granted"]}
        r = admin.post("/v1/webhook-endpoints", json=hook)
        assert r.status_code == 201, r.text
        assert admin.post("/v1/customers", json={"external_id": "acme"}).status_code == 201
        yield Served(server, admin, receiver, r.json()["id"], database_url)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite database of this test's own (for what runs on SQLite only)."""
    path = tmp_path / "meterline.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def test_serve_runs_jobs_in_one_worker_that_sigterm_stops_first(sqlite_url: str) -> None:
    with served(sqlite_url) as s:
        worker = s.worker()
        assert children(s.pid) == [worker]  # nothing else: the one worker
        s.grant()
        s.delivered(1)
        # The worker is the one running them: stopped, nothing is delivered.
        wait_for(s.idle, 10, "moment without due jobs")  # it holds no write lock then
        os.kill(worker, signal.SIGSTOP)
        try:
            s.grant()
            time.sleep(0.6)  # three polls
            assert len(s.receiver.received) == 1
            assert sorted(s.deliveries()) == [("pending", 0), ("succeeded", 1)]
        finally:
            os.kill(worker, signal.SIGCONT)
        s.delivered(2)
        assert children(s.pid) == [worker]  # the same worker all along
        # SIGTERM while the worker waits on a slow receiver: it finishes that delivery,
        # then serve ends — by the signal, as uvicorn does after its graceful shutdown —
        # and only once its worker has ended, not leaving an orphan to finish alone.
        s.receiver.delay = 1.0
        s.grant()
        wait_for(lambda: len(s.receiver.received) == 3, 10, "delivery under way")
        s.server.process.terminate()
        assert s.server.process.wait(timeout=15) == -signal.SIGTERM
        assert not alive(worker)
        output = s.server.output()
        assert "Traceback" not in output
        assert "restarting" not in output  # a stop, not a crash
    assert len(s.receiver.received) == 3
    db = Database(sqlite_url)
    try:
        with db.read() as session:  # the delivery under way was finished and recorded
            statuses = list(session.scalars(select(WebhookDelivery.status)))
    finally:
        db.dispose()
    assert statuses == ["succeeded"] * 3


def test_a_killed_worker_is_replaced_and_jobs_go_on(database_url: str) -> None:
    with served(database_url) as s:
        first = s.worker()
        os.kill(first, signal.SIGKILL)
        # Restarted after a pause of 1 s (doubling while it keeps failing).
        second = wait_for(
            lambda: next((pid for pid in children(s.pid) if pid != first), None),
            10,
            "new worker child",
        )
        assert not alive(first)
        assert s.worker() == second  # one worker again, a new process
        s.grant()
        s.delivered(1)
        assert "the background worker stopped (exit -9); restarting in 1s" in s.server.output()


def test_a_killed_server_leaves_no_worker_behind(sqlite_url: str) -> None:
    with served(sqlite_url) as s:
        worker = s.worker()
        s.server.process.kill()  # SIGKILL: serve cannot stop its worker itself
        s.server.process.wait()
        wait_for(lambda: not alive(worker), 5, "exit of the orphaned worker")


def test_thread_mode_runs_jobs_in_the_serving_process(sqlite_url: str) -> None:
    with served(sqlite_url, mode="thread") as s:
        s.grant()
        s.delivered(1)
        assert children(s.pid) == []


def test_off_mode_leaves_jobs_to_a_worker(sqlite_url: str) -> None:
    with served(sqlite_url, mode="off") as s:
        s.grant()
        time.sleep(0.6)  # three polls, had serve been polling
        assert children(s.pid) == []
        assert s.receiver.received == []
        assert s.deliveries() == [("pending", 0)]
        env = {"METERLINE_WEBHOOKS_ALLOW_PRIVATE": "1"}
        ran = run("worker", "--once", "--database-url", sqlite_url, env=env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert len(s.receiver.received) == 1  # delivered by the worker, at once
        assert s.deliveries() == [("succeeded", 1)]


def test_a_worker_stops_on_a_burst_of_signals(tmp_path: Path) -> None:
    """SIGTERM from serve and again from the parent-death signal arrive together: the
    worker's handler only sets a flag, so a second signal inside the first handler
    cannot deadlock it (a handler that took a lock once left an orphan worker)."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert run("migrate", "--database-url", url).returncode == 0
    for _ in range(3):
        with subprocess.Popen(
            [sys.executable, "-m", "meterline", "worker", "--database-url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            assert process.stdout is not None
            assert "running background jobs" in process.stdout.readline()
            for _ in range(200):
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
            try:  # a job under way finishes first: slow on a loaded CI machine
                code = process.wait(timeout=30)
                assert code == 0, (code, process.stdout.read()[-2000:])
            finally:
                if process.poll() is None:
                    process.kill()
