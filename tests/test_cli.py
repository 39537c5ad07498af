"""The real `meterline` command, as a process."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_support import METERLINE, key_after, run
from meterline import migrations
from meterline.app import create_app
from meterline.config import Settings
from support import Api


def _client(database_url: str):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    return TestClient(create_app(Settings(database_url=database_url)))


def test_help_explains_every_command() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in ("serve", "migrate", "workspaces", "keys"):
        assert command in top.stdout
    serve = run("serve", "--help").stdout
    for option in ("--host", "--port", "--database-url", "--demo"):
        assert option in serve
    assert "create" in run("workspaces", "--help").stdout
    assert "--scope" in run("keys", "create", "--help").stdout


def test_migrate_then_check(database_url: str) -> None:
    result = run("migrate", "--check", "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    assert "Models and migrations agree." in result.stdout
    assert f"revision {migrations.head_revision()}" in result.stdout


def test_database_url_comes_from_the_environment(database_url: str) -> None:
    result = run("workspaces", "create", "from-env", env={"METERLINE_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    listed = run("workspaces", "list", "--database-url", database_url)
    assert "from-env" in listed.stdout


def test_workspaces_create_prints_a_working_admin_key(database_url: str) -> None:
    result = run("workspaces", "create", "acme", "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    key = key_after(result.stdout, "Admin API key:")
    with _client(database_url) as client:
        auth = {"Authorization": f"Bearer {key}"}
        r = client.post("/v1/customers", json={"external_id": "c1"}, headers=auth)
        assert r.status_code == 201
    again = run("workspaces", "create", "acme", "--database-url", database_url)
    assert again.returncode == 1
    assert "exists" in again.stderr


def test_keys_create_with_scopes(database_url: str) -> None:
    run("workspaces", "create", "acme", "--database-url", database_url)
    result = run(
        "keys",
        "create",
        "--workspace",
        "acme",
        "--name",
        "pipeline",
        "--scope",
        "ingest",
        "--scope",
        "read",
        "--database-url",
        database_url,
    )
    assert result.returncode == 0, result.stderr
    assert "(ingest, read)" in result.stdout
    key = key_after(result.stdout, "API key:")
    with _client(database_url) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/customers", headers=auth).status_code == 200
        assert (
            client.post("/v1/customers", json={"external_id": "x"}, headers=auth).status_code == 403
        )


def test_keys_create_with_a_rate_limit_of_its_own(database_url: str) -> None:
    run("workspaces", "create", "acme", "--database-url", database_url)
    limited = run(
        "keys",
        "create",
        "--name",
        "limited",
        "--scope",
        "read",
        "--rate-limit-per-second",
        "0.01",
        "--rate-limit-burst",
        "2",
        "--database-url",
        database_url,
    )
    assert limited.returncode == 0, limited.stderr
    assert "(read) in 'acme', 0.01 requests a second (2 at once)." in limited.stdout
    free = run("keys", "create", "--name", "free", "--unlimited", "--database-url", database_url)
    assert free.returncode == 0, free.stderr
    assert "(admin) in 'acme', unlimited." in free.stdout
    with _client(database_url) as client:
        auth = {"Authorization": f"Bearer {key_after(limited.stdout, 'API key:')}"}
        answers = [client.get("/v1/meters", headers=auth).status_code for _ in range(3)]
        assert answers == [200, 200, 429]
        auth = {"Authorization": f"Bearer {key_after(free.stdout, 'API key:')}"}
        listed = client.get("/v1/api-keys", headers=auth).json()["data"]
        assert {k["name"]: k["rate_limit"] for k in listed} == {
            "admin": None,
            "limited": {"per_second": "0.01", "burst": 2},
            "free": {"per_second": None, "burst": None},
        }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--workspace", "nope"], "No workspace 'nope'"),
        (["keys", "create", "--scope", "owner"], "owner"),
        (["keys", "create", "--rate-limit-burst", "2"], "needs --rate-limit-per-second"),
        (["keys", "create", "--rate-limit-per-second", "0"], "--rate-limit-per-second:"),
        (["keys", "create", "--unlimited", "--rate-limit-per-second", "1"], "--unlimited"),
    ],
)
def test_cli_errors_are_clear(database_url: str, args: list[str], message: str) -> None:
    run("workspaces", "create", "acme", "--database-url", database_url)
    result = run(*args, "--database-url", database_url)
    assert result.returncode != 0
    assert message in result.stderr


def test_unsupported_database_is_a_clear_error() -> None:
    result = run("migrate", "--database-url", "mysql://root@127.0.0.1/test")
    assert result.returncode == 1
    assert "unsupported database" in result.stderr
    assert "Traceback" not in result.stderr


def test_events_import_from_a_file_and_from_stdin(database_url: str, tmp_path: Path) -> None:
    run("workspaces", "create", "acme", "--database-url", database_url)
    now = datetime.now(UTC)
    lines = [
        json.dumps(
            {
                "id": f"i{i}",
                "type": "api",
                "customer": f"c{i % 3}",
                "timestamp": (now - timedelta(minutes=i)).isoformat(),
            }
        )
        for i in range(120)
    ]
    lines[10] = "{not json"
    lines[20] = json.dumps({"id": "no-customer", "type": "api"})
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    first = run(
        "events", "import", str(source), "--batch-size", "50", "--database-url", database_url
    )
    assert first.returncode == 0, first.stderr
    assert "120 lines: 118 accepted, 0 duplicates, 2 rejected, 118 unmetered" in first.stdout
    rejected = [
        json.loads(x) for x in (tmp_path / "events.jsonl.rejected.jsonl").read_text().splitlines()
    ]
    assert [(r["line"], r["code"]) for r in rejected] == [
        (11, "malformed_json"),
        (21, "missing_field"),
    ]
    assert rejected[0]["text"] == "{not json"
    again = subprocess.run(
        [METERLINE, "events", "import", "-", "--database-url", database_url],
        input=source.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert "120 lines: 0 accepted, 118 duplicates, 2 rejected, 0 unmetered" in again.stdout
    assert (tmp_path / "meterline-import.rejected.jsonl").exists()


def test_events_import_of_a_missing_file_is_a_clear_error(database_url: str) -> None:
    run("workspaces", "create", "acme", "--database-url", database_url)
    result = run("events", "import", "/nonexistent.jsonl", "--database-url", database_url)
    assert result.returncode == 1
    assert "no such file" in result.stderr


def test_openapi_prints_the_document_without_a_server_or_database(tmp_path: Path) -> None:
    done = run("openapi", env={"METERLINE_DATABASE_URL": f"sqlite:///{tmp_path}/none.db"})
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document == json.loads(json.dumps(create_app().openapi()))
    assert not (tmp_path / "none.db").exists()
    # every $ref points at a schema the document defines (generators refuse dangling ones)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', done.stdout))
    assert refs
    assert refs <= set(document["components"]["schemas"])
    assert '"$ref": "#/' not in done.stdout.replace('"$ref": "#/components/schemas/', "")
    written = tmp_path / "openapi.json"
    assert run("openapi", "--output", str(written)).returncode == 0
    assert written.read_text() == done.stdout


def test_events_purge_deletes_raw_events_past_retention_now(api: Api, database_url: str) -> None:
    now = datetime.now(UTC)
    old, recent = (now - timedelta(days=33)).isoformat(), (now - timedelta(days=1)).isoformat()
    r = api.post("/v1/meters", json={"key": "api", "event_type": "api", "aggregation": "count"})
    assert r.status_code == 201, r.text
    events = [
        {"id": "old", "type": "api", "customer": "c", "timestamp": old},
        {"id": "new", "type": "api", "customer": "c", "timestamp": recent},
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 2
    settings = {"event_lateness_days": 30, "event_retention_days": 30}
    assert api.patch("/v1/workspace", json=settings).status_code == 200

    done = run("events", "purge", "--database-url", database_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Deleted 1 raw event(s) past retention."
    assert [e["id"] for e in api.get("/v1/events").json()["data"]] == ["new"]
    since = (now - timedelta(days=34)).replace(hour=0, minute=0, second=0, microsecond=0)
    query = {"customer": "c", "from": since.isoformat()}  # whole buckets: read from rollups
    usage = api.get("/v1/meters/api/usage", params=query).json()
    assert [row["value"] for row in usage["data"]] == ["2"]  # totals keep the purged event
    assert run("events", "purge", "--database-url", database_url).stdout.startswith("Deleted 0")
