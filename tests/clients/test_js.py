"""The JavaScript client, from the README test command: the README's build block, the
generated types against today's API, the type check, the JS suite (`npm test`: unit,
hooks in jsdom, contract tests against real servers, a React page in Chromium), and the
packed tarball installed into a fresh app that runs the README's examples against the
demo. Node and npm are required: these tests fail, never skip, without them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import METERLINE
from demo_support import Demo
from support import readme_block

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
ENV = {**os.environ, "METERLINE_BIN": METERLINE, "NO_COLOR": "1", "FORCE_COLOR": "0"}


def sh(command: str | list[str], cwd: Path, timeout: float = 600, **env: str) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command] if isinstance(command, str) else command,
        cwd=cwd,
        env={**ENV, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-6000:], file=sys.stderr)
    assert done.returncode == 0, (
        f"{command!r} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def tarball() -> Path:
    """The README's build block, run as written from the repository's root."""
    assert shutil.which("node"), "Node ≥ 20 is required"
    assert shutil.which("npm"), "npm is required"
    for old in JS.glob("meterline-client-*.tgz"):
        old.unlink()
    sh(readme_block("js-build"), ROOT)
    packed = sorted(JS.glob("meterline-client-*.tgz"))
    assert len(packed) == 1
    return packed[0]


def test_the_generated_types_match_the_api(tarball: Path) -> None:
    assert "matches" in sh("npm run --silent generate:check", JS)


def test_the_package_type_checks_and_builds_esm_cjs_and_declarations(tarball: Path) -> None:
    sh("npm run --silent typecheck", JS)
    for built in ("index.js", "index.cjs", "index.d.ts", "react.js", "react.cjs", "react.d.ts"):
        assert (JS / "dist" / built).is_file(), built
    files = sh(["tar", "-tzf", str(tarball)], JS).split()
    assert "package/dist/index.js" in files
    assert not any("/src/" in f or "/tests/" in f for f in files), files


def test_the_js_suite_passes(tarball: Path) -> None:
    out = sh("npm test --silent", JS)
    tests = re.search(r"Tests\s+(\d+) passed", out)
    assert tests, out[-2000:]
    assert int(tests.group(1)) >= 25
    assert "failed" not in out.split("Tests", 1)[1].splitlines()[0]


@pytest.fixture(scope="module")
def app(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new app that installs the packed package (and React, for the hooks)."""
    where = tmp_path_factory.mktemp("app")
    (where / "package.json").write_text('{"name": "app", "private": true, "type": "module"}\n')
    sh(
        f"npm install --no-audit --no-fund --prefer-offline {tarball}"
        " react@19 react-dom@19 @types/react@19",
        where,
    )
    for example in ("quickstart.mjs", "aliases.mjs"):
        shutil.copy(ROOT / "examples" / "js" / example, where / example)
    return where


def test_a_new_app_tracks_and_consumes_against_the_demo(app: Path, demo: Demo) -> None:
    base, key = demo.base, demo.key
    scans, calls = demo.used("ocr_scan", "org_acme"), demo.used("api_call", "org_acme")
    out = sh("node quickstart.mjs", app, METERLINE_URL=base, METERLINE_API_KEY=key)
    assert re.search(r"^scan recorded; \d+ left today$", out, re.MULTILINE), out
    assert re.search(r"^ocr_scan \d+/\d+ per day, \d+/\d+ per month$", out, re.MULTILINE), out
    assert demo.used("ocr_scan", "org_acme") == scans + 1
    assert demo.used("api_call", "org_acme") == calls + 1
    out = sh("node aliases.mjs", app, METERLINE_URL=base, METERLINE_API_KEY=key)
    assert out.strip() == "rejected: 0"
    assert demo.used("api_call", "org_acme") == calls + 2


def test_the_packed_package_loads_as_esm_and_cjs_with_types_and_renders_on_a_server(
    app: Path,
) -> None:
    out = sh(
        "node -e \"const m = require('@meterline/client');"
        " const r = require('@meterline/client/react');"
        ' console.log(typeof m.Meterline, typeof m.initUsageTracking, typeof r.useEntitlement)"',
        app,
    )
    assert out.split() == ["function", "function", "function"]
    (app / "ssr.mjs").write_text(
        "import { createElement as h } from 'react';\n"
        "import { renderToString } from 'react-dom/server';\n"
        "import { Meterline } from '@meterline/client';\n"
        "import { MeterlineProvider, useEntitlement } from '@meterline/client/react';\n"
        "const Quota = () => { const q = useEntitlement('ocr_scan');"
        " return h('p', null, q.loading ? 'loading' : String(q.remaining)); };\n"
        "const client = new Meterline({ apiKey: 'ml_x', baseUrl: 'http://127.0.0.1:9' });\n"
        "console.log(renderToString(h(MeterlineProvider, { client, customer: 'org_acme' },"
        " h(Quota))));\n"
        "await client.shutdown();\n"
    )
    assert sh("node ssr.mjs", app).strip() == "<p>loading</p>"
    (app / "typed.ts").write_text(
        "import { Meterline, LimitExceededError, type CheckResult } from '@meterline/client';\n"
        "import { useEntitlement } from '@meterline/client/react';\n"
        "const client = new Meterline({ apiKey: 'ml_x' });\n"
        "const answer: Promise<CheckResult> = client.consume({ customer: 'c', feature: 'f' });\n"
        "type Shown = ReturnType<typeof useEntitlement>;\n"
        "const remaining: number | null = (null as unknown as Shown).remaining;\n"
        "// @ts-expect-error: a feature is required\n"
        "client.check({ customer: 'c' });\n"
        "export { answer, remaining, LimitExceededError };\n"
    )
    tsc = JS / "node_modules" / ".bin" / "tsc"
    sh(
        f"{tsc} --noEmit --strict --module nodenext --moduleResolution nodenext"
        " --skipLibCheck false typed.ts",
        app,
    )
