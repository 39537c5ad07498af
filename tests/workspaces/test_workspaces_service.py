from __future__ import annotations

import threading

import pytest
from sqlalchemy import event

from meterline.auth import onboarding
from meterline.auth import service as auth_service
from meterline.db import Database
from meterline.errors import AlreadyExists, NotFound, ValidationFailed
from meterline.workspaces import service as workspaces
from meterline.workspaces import terms as workspace_terms


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


def test_a_transaction_reads_the_terms_version_once_and_its_own_bumps_always(
    db: Database,
) -> None:
    """Decisions committed together read the version once; a change committed by another
    transaction meanwhile is seen by the next transaction; a bump of its own is seen at
    once, every time after."""
    with db.write() as session:
        workspace_id = onboarding.create_workspace(session, "terms").workspace.id
    with db.write() as session:
        before = workspace_terms.version(session, workspace_id)
        statements = _counting(db)
        assert workspace_terms.version(session, workspace_id) == before
        assert statements == []  # kept for the transaction
        workspace_terms.bump(session, workspace_id)
        assert workspace_terms.version(session, workspace_id) == before + 1
        with pytest.raises(ZeroDivisionError), session.begin_nested():
            session.connection()  # the SAVEPOINT now, as the decision writer takes it
            workspace_terms.bump(session, workspace_id)
            assert workspace_terms.version(session, workspace_id) == before + 2
            _ = 1 / 0  # the savepoint rolls back
        assert workspace_terms.version(session, workspace_id) == before + 1  # read again
        event.remove(db.engine, "before_cursor_execute", statements.append_statement)
    with db.read() as session:
        assert workspace_terms.version(session, workspace_id) == before + 1


class _Seen(list[str]):
    def append_statement(self, conn: object, cursor: object, statement: str, *rest: object) -> None:
        self.append(statement)


def _counting(db: Database) -> _Seen:
    seen = _Seen()
    event.listen(db.engine, "before_cursor_execute", seen.append_statement)
    return seen
