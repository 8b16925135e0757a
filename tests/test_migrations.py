from __future__ import annotations

import re
from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from aisupport.cli import alembic_config
from aisupport.models import Base, is_ours


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(create_database: Callable[[], str]) -> None:
    url = create_database()
    config = alembic_config(url)
    command.upgrade(config, "head")  # type: ignore[arg-type]
    assert {"users", "organizations", "memberships", "auth_sessions", "refresh_tokens"} <= _tables(url)
    command.downgrade(config, "base")  # type: ignore[arg-type]
    assert _tables(url) <= {"alembic_version"}
    command.upgrade(config, "head")  # type: ignore[arg-type]
    assert "refresh_tokens" in _tables(url)


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": is_ours})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migration_files_have_dated_names() -> None:
    from aisupport.core.config import PROJECT_ROOT

    names = [path.name for path in (PROJECT_ROOT / "migrations" / "versions").glob("*.py")]
    assert names
    for name in names:
        assert re.match(r"^\d{8}_\d{4}_[0-9a-f]+_\w+\.py$", name), name
