"""`GET /v1/config/export` and `POST /v1/config/apply` through the real app, and
`meterline apply --url` through a real `meterline serve`."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx2
import pytest

from cli_support import run, serving
from meterline.configfile import service as config
from meterline.db import Database
from meterline.workspaces import service as workspaces
from support import Api, assert_problem

DOCUMENT: dict[str, Any] = {
    "meters": {
        "question": {"event_type": "question", "aggregation": "count"},
        "tokens": {"event_type": "llm_call", "aggregation": "sum", "value_property": "tokens"},
    },
    "plans": {
        "tutor": {
            "name": "Tutor",
            "currency": "USD",
            "base_fee": "49.00",
            "features": {"question": {"limits": [{"window": "day", "max": "20"}]}},
        }
    },
    "workspace": {"default_plan": "tutor", "event_lateness_days": 10},
}


def test_export_is_what_apply_takes_back(api: Api, other: Api) -> None:
    applied = api.post("/v1/config/apply", json=DOCUMENT)
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["applied"] is True
    assert [(c["object"], c["key"], c["action"]) for c in body["changes"]] == [
        ("meter", "question", "create"),
        ("meter", "tokens", "create"),
        ("plan", "tutor", "create"),
        ("workspace", "alpha", "update"),
    ]
    exported = api.get("/v1/config/export").json()
    assert exported["meters"]["tokens"]["value_property"] == "tokens"
    assert exported["plans"]["tutor"]["base_fee"] == "49"
    assert exported["workspace"]["default_plan"] == "tutor"
    assert exported["workspace"]["event_lateness_days"] == 10
    back = api.post("/v1/config/apply", params={"prune": True}, json=exported).json()
    assert (back["changes"], back["unchanged"]) == ([], 4)
    # Another workspace sees none of it.
    theirs = other.get("/v1/config/export").json()
    assert (theirs["meters"], theirs["plans"], theirs["workspace"]["default_plan"]) == (
        {},
        {},
        None,
    )


def test_dry_run_answers_the_changes_and_makes_none(api: Api) -> None:
    api.post("/v1/config/apply", json=DOCUMENT)
    edited = {
        "plans": {"tutor": {**DOCUMENT["plans"]["tutor"], "base_fee": "59"}},
        "meters": {"question": DOCUMENT["meters"]["question"]},
    }
    dry = api.post("/v1/config/apply", params={"dry_run": True, "prune": True}, json=edited)
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["applied"] is False
    assert {(c["object"], c["key"], c["action"]) for c in body["changes"]} == {
        ("meter", "tokens", "delete"),
        ("plan", "tutor", "update"),
    }
    update = next(c for c in body["changes"] if c["action"] == "update")
    assert update["fields"] == [{"field": "base_fee", "old": "49", "new": "59"}]
    assert update["version"] == 2
    assert api.get("/v1/meters/tokens").status_code == 200
    assert api.get("/v1/plans/tutor").json()["version"] == 1

    done = api.post("/v1/config/apply", params={"prune": True}, json=edited).json()
    assert done["applied"] is True
    assert api.get("/v1/meters/tokens").status_code == 404
    assert api.get("/v1/plans/tutor").json()["base_fee"] == "59"
    assert api.get("/v1/plans/tutor").json()["version"] == 2


def test_errors_name_the_document_path_and_change_nothing(api: Api) -> None:
    bad = {
        "meters": {"question": {"event_type": "question", "aggregation": "count"}},
        "plans": {"tutor": {**DOCUMENT["plans"]["tutor"], "features": {"nope": {}}}},
    }
    answer = assert_problem(api.post("/v1/config/apply", json=bad), 422, "validation_error")
    assert answer["errors"] == [
        {
            "field": "plans.tutor.features.nope",
            "code": "unknown_meter",
            "message": "no meter 'nope'",
        }
    ]
    assert api.get("/v1/meters/question").status_code == 404  # created, then rolled back
    fields = assert_problem(
        api.post("/v1/config/apply", json={"meters": {"m": {"aggregation": "avg"}}, "x": 1}),
        422,
        "validation_error",
    )["errors"]
    assert {(e["field"], e["code"]) for e in fields} == {("x", "unknown_field")}
    fields = assert_problem(
        api.post("/v1/config/apply", json={"meters": {"m": {"aggregation": "avg"}}}),
        422,
        "validation_error",
    )["errors"]
    assert {(e["field"], e["code"]) for e in fields} == {("meters.m.event_type", "missing_field")}
    assert_problem(api.post("/v1/config/apply", json=[1]), 422, "validation_error")


def test_only_admin_keys_configure(api: Api) -> None:
    reader = api.new_key("read")
    assert_problem(reader.get("/v1/config/export"), 403, "insufficient_scope")
    assert_problem(reader.post("/v1/config/apply", json={}), 403, "insufficient_scope")


def test_apply_through_a_running_server(database_url: str, tmp_path: Path) -> None:
    """`meterline apply --url --api-key`: the same run, through POST /v1/config/apply;
    errors still name the file's lines."""
    key = "ml_" + secrets.token_urlsafe(32)
    env = {"METERLINE_BOOTSTRAP_KEY": key}
    path = tmp_path / "tutor.yaml"
    path.write_text(
        "meters:\n  question:\n    event_type: question\n    aggregation: count\n"
        "plans:\n  tutor:\n    name: Tutor\n    currency: USD\n    features:\n"
        "      question:\n        limits: [{window: day, max: 20}]\n"
    )
    with serving("--database-url", database_url, env=env) as server:
        remote = ("--url", server.base, "--api-key", key)
        first = run("apply", str(path), *remote)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [
            "+ meter question",
            "+ plan tutor",
            "2 created, 0 updated, 0 deleted, 0 unchanged.",
        ]
        plan = httpx2.get(
            f"{server.base}/v1/plans/tutor", headers={"Authorization": f"Bearer {key}"}
        )
        assert plan.json()["features"]["question"]["limits"][0]["max"] == "20"
        again = run("apply", str(path), *remote)
        assert again.stdout.splitlines() == ["0 created, 0 updated, 0 deleted, 2 unchanged."]
        path.write_text(path.read_text().replace("max: 20", "max: -1"))
        bad = run("apply", str(path), *remote)
        assert bad.returncode == 1
        assert "/tutor.yaml:11: plans.tutor.features.question.limits.0.max:" in bad.stderr
        exported = run("export", *remote)
        assert "      question:\n        enabled: true\n" in exported.stdout
        wrong_key = run("apply", str(path), "--url", server.base, "--api-key", "ml_nope")
        assert wrong_key.returncode == 1
        assert "invalid_api_key" in wrong_key.stderr or "Invalid" in wrong_key.stderr


def test_the_demo_workspace_round_trips(db: Database) -> None:
    """Export → apply is an empty diff on the demo's whole catalog (ten meters of every
    kind, four tiered plans with credits, limits and prices, a default plan)."""
    from meterline import demo

    with db.write() as session:
        demo.ensure(session)
        workspace_id = workspaces.find_workspace(session, demo.DEMO_WORKSPACE).id
        document = config.export(session, workspace_id)
    assert len(document.meters) >= 10
    assert document.workspace.default_plan is not None
    as_json = document.model_dump(mode="json")
    result = config.run(db, workspace_id, as_json, prune=True)
    assert result.changes == []
    assert result.unchanged == len(document.meters) + len(document.plans) + 1


def test_library_mode_applies_a_file_as_the_api_does(
    api: Api, database_url: str, tmp_path: Path
) -> None:
    import meterline
    from meterline.errors import ValidationFailed

    path = Path(__file__).parents[2] / "examples" / "config" / "catalog.yaml"
    with meterline.Meterline(database_url, workspace="alpha") as ml:
        dry = ml.apply(path, dry_run=True)
        assert (dry.applied, len(dry.changes)) == (False, 6)
        assert api.get("/v1/plans/pro").status_code == 404
        done = ml.apply(path)
        assert done.applied is True
        assert ml.export().model_dump(mode="json") == api.get("/v1/config/export").json()
        assert ml.apply(api.get("/v1/config/export").json()).changes == []
        broken = tmp_path / "broken.yaml"
        broken.write_text("meters:\n  a: [\n")
        with pytest.raises(ValidationFailed, match=r"broken\.yaml:3: not valid YAML"):
            ml.apply(broken)
