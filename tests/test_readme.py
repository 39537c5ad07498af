"""Every command and example in the README and in the documentation site's pages
(docs/) runs, as written, against a real `meterline serve --demo` (see ``docs_support``
for how each kind of block runs)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_support import serving
from docs_support import (
    CURL_WRAPPER,
    Example,
    contains,
    count_calls,
    examples,
    expectations,
    pairs,
    read_calls,
)
from support import doc_pages

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent


def all_examples() -> list[Example]:
    """The README's blocks, then each docs/ page's, in that order (one demo runs them all)."""
    return [block for page in doc_pages() for block in examples(page)]


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env},
        timeout=600,
        check=False,
    )


def _on(server_base: str, key: str, text: str) -> str:
    host = server_base.removeprefix("http://")
    text = re.sub(r"(localhost|127\.0\.0\.1):8000", host, text)
    return text.replace("ml_…", key)


def _check_calls(block: Example, calls: list, first: int) -> None:
    expected = {e.call: e.text for e in expectations(block.text, first)}
    for index in range(first, first + count_calls(block.text)):
        call = calls[index]
        said = expected.get(index, "")
        status = re.match(r"\s*(\d{3})\b", said)
        if status:
            assert call.status == int(status.group(1)), (block.where(), index, call.body[:300])
        else:
            assert call.status < 400, (block.where(), index, call.status, call.body[:300])
        for key, value in pairs(said):
            assert contains(call.json(), key, value), (block.where(), key, value, call.body[:500])


PG_URL = os.environ.get("METERLINE_TEST_POSTGRES_URL")


def _commands(text: str) -> list[str]:
    """The command lines of a block (comments and blank lines out)."""
    return [
        line.split("  #")[0].strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_ci_blocks_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = [b for b in all_examples() if b.kind == "ci"]
    assert blocks
    for block in blocks:
        for command in _commands(block.text):
            assert command == ".ci/run" or command in ci, (block.where(), command)
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_setup_blocks_are_the_readme_commands() -> None:
    """The run command ends in `meterline serve --demo` (what the demo test starts); the
    test command is what `.ci/run` extracts and runs."""
    run_block, test_block = [b for b in examples(README) if b.kind == "setup"]
    assert run_block.text.strip().endswith("meterline serve --demo")
    assert test_block.text.strip().endswith("pytest")
    assert "readme_command test-command" in (ROOT / ".ci" / "run").read_text()
    # The getting-started page shows the same two commands, and no other page has any.
    shown = [(b.page, b.text) for b in all_examples() if b.kind == "setup"]
    assert shown == [
        ("README.md", run_block.text),
        ("README.md", test_block.text),
        ("docs/getting-started.md", run_block.text),
        ("docs/getting-started.md", test_block.text),
    ]


def test_benchmark_blocks_run_at_a_small_scale(tmp_path: Path) -> None:
    blocks = [b for b in all_examples() if b.kind == "benchmark"]
    assert blocks
    for block in blocks:
        for command in _commands(block.text):
            if not PG_URL and ("postgres" in command or "ingest.py" in command):
                continue  # these need PostgreSQL (ingest.py runs both databases)
            env = {"METERLINE_BENCH_QUICK": "1"}
            if PG_URL:
                env["METERLINE_BENCH_POSTGRES_URL"] = PG_URL
            done = _bash(f"cd {ROOT} && {command}", env, tmp_path)
            assert done.returncode == 0, (command, done.stdout[-1500:], done.stderr[-1500:])
            if command.startswith("python"):
                assert re.search(r"\d", done.stdout), (command, done.stdout)  # it printed figures


@pytest.mark.skipif(not PG_URL, reason="METERLINE_TEST_POSTGRES_URL is not set")
def test_postgres_blocks_start_meterline_on_postgresql(tmp_path: Path) -> None:
    import signal
    import uuid

    import httpx2
    import psycopg
    from sqlalchemy import make_url

    from cli_support import free_port

    blocks = [b for b in all_examples() if b.kind == "postgres"]
    assert blocks
    server = make_url(PG_URL)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    for block in blocks:
        name = f"meterline_readme_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = server.set(database=name).render_as_string(hide_password=False)
        port = free_port()
        text = re.sub(r"postgresql://\S+", url, block.text).replace("--port 8000", f"--port {port}")
        process = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + text],
            cwd=tmp_path,
            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, (
                    process.stdout.read().decode() if process.stdout else ""
                )
                try:
                    ready = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    if ready.status_code == 200:
                        assert ready.json()["database"] == "postgresql"
                        break
                except httpx2.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_readme_blocks_are_all_known_kinds() -> None:
    kinds = {block.kind for block in all_examples()}
    known = {"setup", "demo", "shell", "postgres", "benchmark", "ci", "file", "named"}
    assert kinds <= known, kinds
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    for block in all_examples():
        if block.kind == "file":
            assert (ROOT / block.options).exists(), block.where()
        if block.kind == "named":  # some test reads and runs it by its name
            assert f'"{block.options}"' in tests, (block.where(), block.options)
    assert len(examples(README)) >= 5
    assert len(all_examples()) >= 15


def test_shell_blocks_run_in_an_empty_folder(tmp_path: Path) -> None:
    blocks = [b for b in all_examples() if b.kind == "shell"]
    assert blocks
    for number, block in enumerate(blocks):
        folder = tmp_path / str(number)
        folder.mkdir()
        env = {"METERLINE_DATABASE_URL": f"sqlite:///{folder}/meterline.db"}
        done = _bash("set -euo pipefail\n" + block.text, env, folder)
        assert done.returncode == 0, (block.where(), done.stdout[-1500:], done.stderr[-1500:])


def test_every_readme_example_runs_against_the_demo(tmp_path: Path) -> None:
    key = "ml_" + secrets.token_urlsafe(32)
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    # No credit sweeps: reads and debits grant a plan's allocation at their first touch
    # anyway, and a sweep landing between org_123's creation and its subscription (the
    # first session) would grant it the default plan's 400 credits first — seen when the
    # worker started late on a busy machine, the balance 505 instead of 105.
    env = {"METERLINE_BOOTSTRAP_KEY": key, "METERLINE_CREDIT_SWEEP_SECONDS": "0"}
    with serving("--demo", "--database-url", f"sqlite:///{tmp_path}/demo.db", env=env) as server:
        first = 0
        for block in all_examples():
            if block.kind != "demo":
                continue
            text = _on(server.base, key, block.text)
            if block.lang == "bash":
                done = _bash(CURL_WRAPPER + text, {"MD_CALLS": str(calls_dir)}, work)
                assert done.returncode == 0, (
                    block.where(),
                    done.stdout[-2000:],
                    done.stderr[-2000:],
                )
                _check_calls(block, read_calls(calls_dir), first)
                first += count_calls(block.text)
            else:
                script = work / f"example_{block.line}.py"
                script.write_text(text)
                done = subprocess.run(
                    [sys.executable, str(script)],
                    capture_output=True,
                    text=True,
                    cwd=work,
                    timeout=300,
                    check=False,
                )
                assert done.returncode == 0, (
                    block.where(),
                    done.stdout[-2000:],
                    done.stderr[-2000:],
                )
