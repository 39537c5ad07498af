from __future__ import annotations

import threading

import pytest

from meterline.auth import onboarding
from meterline.auth import service as auth_service
from meterline.db import Database
from meterline.errors import AlreadyExists, NotFound, ValidationFailed
from meterline.workspaces import service as workspaces


def test_bootstrap_only_on_an_empty_database(db: Database) -> None:
    with db.write() as session:
        first = onboarding.bootstrap(session)
    assert first is not None
    assert first.workspace.name == "default"
    with db.write() as session:
        assert onboarding.bootstrap(session) is None
    with db.read() as session:
        context, _ = auth_service.authenticate(session, first.admin_key, default_rate=None)
    assert context.workspace_id == first.workspace.id


def test_processes_starting_together_bootstrap_once(db: Database) -> None:
    results: list[object] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        with db.write() as session:
            results.append(onboarding.bootstrap(session))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert sum(r is not None for r in results) == 1
    with db.read() as session:
        assert [w.name for w in workspaces.list_workspaces(session)] == ["default"]


def test_workspace_names_are_unique_and_sane(db: Database) -> None:
    with db.write() as session:
        onboarding.create_workspace(session, "acme")
    with pytest.raises(AlreadyExists), db.write() as session:
        onboarding.create_workspace(session, "acme")
    with pytest.raises(ValidationFailed), db.write() as session:
        onboarding.create_workspace(session, "   ")


def test_find_workspace_by_name_id_or_the_only_one(db: Database) -> None:
    with db.write() as session:
        acme = onboarding.create_workspace(session, "acme").workspace
    with db.read() as session:
        assert workspaces.find_workspace(session, None).id == acme.id
        assert workspaces.find_workspace(session, "acme").id == acme.id
        assert workspaces.find_workspace(session, str(acme.id)).id == acme.id
    with db.write() as session:
        onboarding.create_workspace(session, "globex")
    with pytest.raises(NotFound), db.read() as session:
        workspaces.find_workspace(session, None)
