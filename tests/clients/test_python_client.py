"""The light Python client, as a user installs it: the README's `pip install
./clients/python` in a fresh venv pulls httpx and nothing of the server; the client's own
tests pass there against a real `meterline serve` (started as a program); and the README's
example runs there against the demo with an ingest key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from cli_support import METERLINE
from demo_support import Demo
from support import readme_block

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
# httpx and what it needs, whatever their versions: nothing of the server.
HTTPX_CLOSURE = {"httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio"}
HTTPX_CLOSURE |= {"typing-extensions", "exceptiongroup"}


def pip(environment: Path, *args: str) -> str:
    done = subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the client (the README's way), then pytest to run its tests."""
    where = tmp_path_factory.mktemp("light") / "venv"
    venv.create(where, with_pip=True)
    done = subprocess.run(  # the README's command, as written, with this venv's pip
        ["bash", "-euo", "pipefail", "-c", readme_block("python-client-install")],
        cwd=ROOT,
        env={"PATH": f"{where / 'bin'}:/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return where


def installed(environment: Path) -> set[str]:
    listed = json.loads(pip(environment, "list", "--format=json"))
    return {re.sub(r"[-_.]+", "-", p["name"].lower()) for p in listed}


def test_the_client_installs_alone_with_httpx_only(light_venv: Path) -> None:
    extra = installed(light_venv) - {"pip", "setuptools", "meterline-client"}
    assert "httpx" in extra
    assert extra <= HTTPX_CLOSURE, extra - HTTPX_CLOSURE


def test_the_clients_own_tests_pass_without_the_server_installed(light_venv: Path) -> None:
    pip(light_venv, "install", "--quiet", "pytest>=8")
    done = subprocess.run(
        [str(light_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=CLIENT,
        env={"METERLINE_SERVER_BIN": METERLINE, "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    assert done.returncode == 0, done.stdout[-5000:]
    assert re.search(r"\b(\d+) passed\b", done.stdout)
    assert " failed" not in done.stdout


def test_the_readme_example_sends_usage_to_the_demo_with_an_ingest_key(
    light_venv: Path, demo: Demo
) -> None:
    scans, tokens = demo.used("ocr_scan", "org_acme"), demo.used("llm_tokens", "org_acme")
    done = subprocess.run(
        [str(light_venv / "bin" / "python"), str(ROOT / "examples" / "python_client.py")],
        env={
            "METERLINE_API_KEY": demo.new_key("ingest"),
            "METERLINE_URL": demo.base,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^scans left today: \d+$", done.stdout, re.MULTILINE), done.stdout
    assert "rejected: []" in done.stdout
    assert demo.used("ocr_scan", "org_acme") == scans + 1
    assert demo.used("llm_tokens", "org_acme") == tokens + 1200
