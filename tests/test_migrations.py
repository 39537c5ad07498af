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
