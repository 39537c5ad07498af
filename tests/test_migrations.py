from __future__ import annotations

from meterline import migrations
from meterline.db import Database


def test_models_match_migrations(db: Database) -> None:
    migrations.check(db)  # raises when autogenerate would find a difference


def test_upgrade_is_idempotent_and_at_head(db: Database) -> None:
    migrations.upgrade(db)
    migrations.upgrade(db)
    assert migrations.current_revision(db) == migrations.head_revision()


def test_migration_files_are_date_stamped() -> None:
    from importlib.resources import files

    names = [
        p.name
        for p in files("meterline.migrations").joinpath("versions").iterdir()
        if p.name.endswith(".py")
    ]
    assert names
    for name in names:
        year, month, day, *_ = name.split("_")
        assert (len(year), len(month), len(day)) == (4, 2, 2), name


def test_upgrading_to_billing_schedules_every_subscriptions_cycle(own_database_url: str) -> None:
    from alembic import command
    from sqlalchemy import delete

    from meterline.auth import onboarding
    from meterline.customers import service as customers
    from meterline.customers.schemas import CustomerCreate
    from meterline.jobs import service as jobs
    from meterline.jobs.models import Job
    from meterline.plans import service as plans
    from meterline.plans.schemas import PlanCreate
    from meterline.subscriptions import service as subscriptions
    from meterline.subscriptions.schemas import SubscriptionCreate

    db = Database(own_database_url)
    with db.write() as session:
        workspace_id = onboarding.create_workspace(session, "old").workspace.id
        customers.create(session, workspace_id, CustomerCreate(external_id="acme"))
        plans.create(session, workspace_id, PlanCreate(key="p", name="P", currency="USD"))
        sub = subscriptions.create(
            session, workspace_id, SubscriptionCreate(customer="acme", plan="p")
        )
        session.execute(delete(Job))  # as a database from before billing has none
    with db.write_engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0004")
    migrations.upgrade(db)
    with db.read() as session:
        pending = jobs.pending(session)
    db.dispose()
    assert [(job.kind, job.key, job.payload) for job in pending] == [
        ("billing.cycle", f"cycle:{sub.id}", {"subscription": sub.id})
    ]
