"""`meterline apply FILE.yaml` and `meterline export`, as a user runs them: the real
command on a real database (SQLite and PostgreSQL), checked through the real API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from cli_support import key_after, run
from meterline.app import create_app
from meterline.config import Settings

CATALOG = """\
# The accounting SaaS's catalog
meters:
  ocr_scan:
    name: OCR scans
    event_type: ocr_scan
    aggregation: count
    unit: scan
    filter: {document: [receipt, invoice]}
    group_by: [document]
  storage:
    event_type: storage
    aggregation: max
    value_property: bytes
  feature_time:
    event_type: feature_used
    aggregation: duration
    value_property: seconds
    unit: minute
  insight:
    event_type: insight
    aggregation: count
plans:
  pro:
    name: Pro
    currency: USD
    base_fee: 49.00
    credits: {amount: 7000, expires_at_period_end: true}
    features:
      ocr_scan:
        included: 50
        price: {model: per_unit, unit_price: 0.05}
        limits:
          - {window: day, max: 20}
          - {window: month, max: 1000, enforcement: soft, alert_at: [0.8, 1.0]}
      insight:
        credit_cost: {per_unit: 9, property: depth, values: {advanced: 25}}
      storage:
        price:
          model: graduated
          tiers:
            - {up_to: 5, unit_price: 0}
            - {up_to: null, unit_price: 0.02}
  free:
    name: Free
    currency: EUR
    features:
      ocr_scan:
        limits: [{window: month, max: 10}]
workspace:
  default_plan: free
  invoice_grace_days: 2
"""


@pytest.fixture
def workspace(database_url: str) -> str:
    """A workspace named acme; its admin key."""
    made = run("workspaces", "create", "acme", "--database-url", database_url)
    assert made.returncode == 0, made.stderr
    return key_after(made.stdout, "Admin API key:")


@pytest.fixture
def http(database_url: str, workspace: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database_url, jobs_poll_seconds=0))
    with TestClient(app, headers={"Authorization": f"Bearer {workspace}"}) as client:
        yield client


def apply(database_url: str, path: Path, *options: str) -> Any:
    return run("apply", str(path), *options, "--database-url", database_url)


def write(tmp_path: Path, text: str, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def exported(http: TestClient) -> dict[str, Any]:
    answer = http.get("/v1/config/export")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_apply_creates_everything_and_a_second_run_changes_nothing(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path
) -> None:
    path = write(tmp_path, CATALOG)
    first = apply(database_url, path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "+ meter ocr_scan" in lines
    assert "+ plan pro" in lines
    assert "~ workspace acme" in lines
    assert '    default_plan: (none) → "free"' in lines
    assert lines[-1] == "6 created, 1 updated, 0 deleted, 0 unchanged."

    pro = http.get("/v1/plans/pro").json()
    assert pro["version"] == 1
    assert pro["features"]["ocr_scan"]["price"]["unit_price"] == "0.05"
    assert pro["features"]["ocr_scan"]["limits"][1]["alert_at"] == ["0.8", "1"]
    assert pro["features"]["insight"]["credit_cost"]["values"] == {"advanced": "25"}
    meter = http.get("/v1/meters/ocr_scan").json()
    assert meter["filter"] == {"document": ["receipt", "invoice"]}
    assert meter["group_by"] == ["document"]
    assert http.get("/v1/meters/storage").json()["name"] == "storage"
    settings = http.get("/v1/workspace").json()
    assert (settings["default_plan"], settings["invoice_grace_days"]) == ("free", 2)

    again = apply(database_url, path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["0 created, 0 updated, 0 deleted, 7 unchanged."]
    assert http.get("/v1/plans/pro").json()["version"] == 1


def test_a_changed_plan_gets_a_new_version_as_put_does(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path
) -> None:
    path = write(tmp_path, CATALOG)
    assert apply(database_url, path).returncode == 0
    # The same edit through PUT, on a copy of the plan: the version goes 1 → 2 there too.
    copy = {k: v for k, v in http.get("/v1/plans/pro").json().items() if k in ("name", "currency")}
    assert http.post("/v1/plans", json={"key": "pro_copy", **copy}).status_code == 201
    put = http.put("/v1/plans/pro_copy", json={**copy, "base_fee": "59"})
    assert put.json()["version"] == 2

    write(
        tmp_path,
        CATALOG.replace("base_fee: 49.00", "base_fee: 59").replace("included: 50", "included: 100"),
    )
    changed = apply(database_url, path)
    assert changed.returncode == 0, changed.stderr
    lines = changed.stdout.splitlines()
    assert lines[0] == "~ plan pro (version 1 → 2)"
    assert '    base_fee: "49" → "59"' in lines
    assert '    features.ocr_scan.included: "50" → "100"' in lines
    assert lines[-1] == "0 created, 1 updated, 0 deleted, 6 unchanged."
    pro = http.get("/v1/plans/pro").json()
    assert (pro["version"], pro["base_fee"], pro["features"]["ocr_scan"]["included"]) == (
        2,
        "59",
        "100",
    )
    # The same values written differently are no change: 0.050 is 0.05.
    write(
        tmp_path,
        CATALOG.replace("base_fee: 49.00", "base_fee: '59.000'").replace(
            "included: 50", "included: 100.0"
        ),
    )
    same = apply(database_url, path)
    assert same.stdout.splitlines() == ["0 created, 0 updated, 0 deleted, 7 unchanged."]
    assert http.get("/v1/plans/pro").json()["version"] == 2


EDITED = (
    CATALOG.replace("    name: OCR scans\n", "    name: Receipt scans\n")
    .replace("  insight:\n    event_type: insight\n    aggregation: count\n", "")
    .replace(
        "      insight:\n        credit_cost: "
        "{per_unit: 9, property: depth, values: {advanced: 25}}\n",
        "",
    )
    .replace("plans:\n", "  sms:\n    event_type: sms\n    aggregation: sum\nplans:\n")
    .replace("  free:\n    name: Free\n    currency: EUR\n", "")
    .replace("    features:\n      ocr_scan:\n        limits: [{window: month, max: 10}]\n", "")
    .replace("  default_plan: free\n", "  default_plan: pro\n")
)


def test_dry_run_prints_each_change_by_field_and_changes_nothing(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path
) -> None:
    assert apply(database_url, write(tmp_path, CATALOG)).returncode == 0
    before = exported(http)
    path = write(tmp_path, EDITED, "edited.yaml")

    dry = apply(database_url, path, "--prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert "~ meter ocr_scan" in lines
    assert '    name: "OCR scans" → "Receipt scans"' in lines
    assert "+ meter sms" in lines
    assert "- meter insight" in lines
    assert "~ plan pro (version 1 → 2)" in lines
    removed = '    features.insight: {"enabled": true, "included": "0", "price": null, '
    assert any(line.startswith(removed) and line.endswith("→ (none)") for line in lines), lines
    assert '    default_plan: "free" → "pro"' in lines
    assert "  plan free is not in the file: kept (plans are never deleted)" in lines
    assert lines[-1] == (
        "1 to create, 3 to update, 1 to delete, 2 unchanged (dry run: nothing changed)."
    )
    assert exported(http) == before
    assert http.get("/v1/plans/pro").json()["version"] == 1

    # Without --dry-run the same run does what it printed.
    done = apply(database_url, path, "--prune")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1 created, 3 updated, 1 deleted, 2 unchanged."
    after = exported(http)
    assert sorted(after["meters"]) == ["feature_time", "ocr_scan", "sms", "storage"]
    assert sorted(after["plans"]) == ["free", "pro"]  # plans are kept
    assert "insight" not in after["plans"]["pro"]["features"]
    assert after["workspace"]["default_plan"] == "pro"
    assert http.get("/v1/meters/insight").status_code == 404


def test_without_prune_what_the_file_leaves_out_stays(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path
) -> None:
    assert apply(database_url, write(tmp_path, CATALOG)).returncode == 0
    only = "meters:\n  sms:\n    event_type: sms\n    aggregation: sum\n"
    done = apply(database_url, write(tmp_path, only, "only.yaml"))
    assert done.stdout.splitlines() == [
        "+ meter sms",
        "1 created, 0 updated, 0 deleted, 0 unchanged.",
    ]
    assert http.get("/v1/meters/insight").status_code == 200
    # With --prune, only the sections the file has are pruned: its plans stay (no plans:).
    pruned = apply(database_url, write(tmp_path, only, "only.yaml"), "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert sorted(exported(http)["meters"]) == ["sms"]
    assert sorted(exported(http)["plans"]) == ["free", "pro"]


def test_export_then_apply_is_an_empty_diff(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path
) -> None:
    assert apply(database_url, write(tmp_path, CATALOG)).returncode == 0
    out = tmp_path / "exported.yaml"
    made = run("export", "-o", str(out), "--database-url", database_url)
    assert made.returncode == 0, made.stderr
    document = yaml.safe_load(out.read_text())
    assert document == exported(http)  # the YAML is the API's document
    assert document["plans"]["pro"]["features"]["ocr_scan"]["price"]["unit_price"] == "0.05"
    assert document["meters"]["feature_time"]["unit"] == "minute"

    back = apply(database_url, out, "--prune", "--dry-run")
    assert back.stdout.splitlines() == [
        "0 to create, 0 to update, 0 to delete, 7 unchanged (dry run: nothing changed)."
    ]
    as_json = run("export", "--format", "json", "--database-url", database_url)
    assert json.loads(as_json.stdout) == document


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meters:\n  a: b: c\n", "catalog.yaml:2: not valid YAML: mapping values"),
        (
            "meters:\n  a: {event_type: a, aggregation: count}\n"
            "  a: {event_type: b, aggregation: count}\n",
            "catalog.yaml:3: meters.a is written twice (lines 2 and 3)",
        ),
        ("- meters\n", "catalog.yaml:1: the file must be a mapping"),
        (
            "meter:\n  a: {}\n",
            "catalog.yaml:1: meter: Extra inputs are not permitted (unknown_field)",
        ),
        (
            "meters:\n  ok: {event_type: ok, aggregation: count}\n  bad:\n    event_type: b\n"
            "    aggregation: count\n    colour: red\n",
            "catalog.yaml:6: meters.bad.colour: Extra inputs are not permitted (unknown_field)",
        ),
        (
            "meters:\n  ok: {event_type: ok, aggregation: count}\nplans:\n  p:\n    name: P\n"
            "    currency: USD\n    features:\n      nope: {included: 5}\n",
            "catalog.yaml:8: plans.p.features.nope: no meter 'nope' (unknown_meter)",
        ),
        (
            "meters:\n  ok: {event_type: ok, aggregation: count}\nplans:\n  p:\n    name: P\n"
            "    currency: XYZ\n",
            "catalog.yaml:6: plans.p.currency:",
        ),
        (
            "meters:\n  ok: {event_type: ok, aggregation: count}\n"
            "workspace:\n  default_plan: gold\n",
            "catalog.yaml:4: workspace.default_plan: no such plan (unknown_plan)",
        ),
        (
            "meters:\n  ok:\n    key: other\n    event_type: ok\n    aggregation: count\n",
            "catalog.yaml:3: meters.ok.key: is not 'ok' (key_mismatch)",
        ),
    ],
    ids=[
        "yaml",
        "twice",
        "not-mapping",
        "unknown-section",
        "unknown-field",
        "unknown-meter",
        "currency",
        "default-plan",
        "key",
    ],
)
def test_a_bad_file_names_its_line_and_field_and_changes_nothing(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path, text: str, expected: str
) -> None:
    before = exported(http)
    done = apply(database_url, write(tmp_path, text))
    assert done.returncode == 1
    assert done.stderr.startswith("error: "), done.stderr
    assert f"/{expected}" in done.stderr, done.stderr
    assert done.stdout == ""
    assert exported(http) == before  # the valid meter `ok` was not created either


def test_a_change_that_would_rewrite_billed_numbers_is_refused_whole(
    database_url: str, workspace: str, http: TestClient, tmp_path: Path
) -> None:
    path = write(tmp_path, CATALOG)
    assert apply(database_url, path).returncode == 0
    sent = http.post("/v1/events", json={"id": "e1", "type": "insight", "customer": "c1"})
    assert sent.json()["accepted"] == 1
    before = exported(http)
    write(
        tmp_path,
        CATALOG.replace("base_fee: 49.00", "base_fee: 99")
        .replace("name: OCR scans", "name: Receipt scans")
        .replace("  insight:\n    event_type: insight\n", "  insight:\n    event_type: insights\n"),
    )
    done = apply(database_url, path)
    assert done.returncode == 1
    assert "/catalog.yaml:19: meters.insight:" in done.stderr, done.stderr
    assert "(meter_has_events)" in done.stderr
    assert exported(http) == before  # nor the meter's new name, applied before the error


def test_missing_file_and_workspace_choice(
    database_url: str, workspace: str, tmp_path: Path
) -> None:
    missing = apply(database_url, tmp_path / "nope.yaml")
    assert missing.returncode == 1
    assert "no such file" in missing.stderr
    run("workspaces", "create", "globex", "--database-url", database_url)
    path = write(tmp_path, CATALOG)
    unnamed = apply(database_url, path)
    assert unnamed.returncode == 1
    assert "--workspace" in unnamed.stderr
    named = apply(database_url, path, "--workspace", "globex")
    assert named.returncode == 0, named.stderr
    listed = run("export", "--workspace", "acme", "--database-url", database_url)
    assert yaml.safe_load(listed.stdout)["meters"] == {}


def test_the_documented_catalog_applies_once(
    database_url: str, workspace: str, http: TestClient
) -> None:
    """docs/configuration.md shows examples/config/catalog.yaml (test_readme_examples)."""
    path = Path(__file__).parents[2] / "examples" / "config" / "catalog.yaml"
    first = apply(database_url, path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "5 created, 1 updated, 0 deleted, 0 unchanged."
    pro = http.get("/v1/plans/pro").json()
    assert pro["features"]["api_call"]["price"]["tiers"][1]["unit_price"] == "0.001"
    assert http.get("/v1/workspace").json()["default_plan"] == "free"
    again = apply(database_url, path, "--prune")
    assert again.stdout.splitlines() == ["0 created, 0 updated, 0 deleted, 6 unchanged."]
