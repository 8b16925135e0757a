from __future__ import annotations

import re
from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aisupport.cli import alembic_config
from aisupport.core.config import Settings
from aisupport.core.db import TenantOwned, append_only_tables, tenant_column, tenant_models
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


COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def row_level_security_gaps(conn: Connection, models: list[type[TenantOwned]]) -> list[str]:
    """What keeps each tenant-owned table's rows from being confined to the current organization:
    row-level security off, a command no policy covers, a write policy that is not exactly
    `<tenant column> = app_current_org()`, a read policy that does not include it."""
    enabled = dict(
        conn.execute(text("SELECT relname, relrowsecurity FROM pg_class WHERE relkind = 'r'")).all()
    )
    policies = conn.execute(
        text("SELECT tablename, cmd, permissive, qual, with_check FROM pg_policies")
    ).all()
    gaps = []
    for model in models:
        table, tenant = str(model.__tablename__), f"({tenant_column(model)} = app_current_org())"
        if not enabled.get(table):
            gaps.append(f"{table}: row-level security is not enabled")
        own = [
            policy for policy in policies if policy.tablename == table and policy.permissive == "PERMISSIVE"
        ]
        for command_ in COMMANDS:
            applying = [policy for policy in own if policy.cmd in (command_, "ALL")]
            if not applying:
                gaps.append(f"{table}: no policy for {command_}")
            for policy in applying:
                # A policy without WITH CHECK checks new rows with its USING expression.
                if command_ in ("INSERT", "UPDATE") and (policy.with_check or policy.qual) != tenant:
                    gaps.append(f"{table}: {command_} may write {policy.with_check or policy.qual}")
                if command_ in ("UPDATE", "DELETE") and policy.qual != tenant:
                    gaps.append(f"{table}: {command_} may change {policy.qual}")
                if command_ == "SELECT" and tenant[1:-1] not in (policy.qual or ""):
                    gaps.append(f"{table}: SELECT reads {policy.qual}")
    return gaps


def test_every_tenant_owned_model_is_under_row_level_security(database_url: str) -> None:
    models = tenant_models(Base)  # derived from the models: no list to keep
    assert {"organizations", "memberships", "invitations", "api_keys", "audit_events"} <= {
        model.__tablename__ for model in models
    }
    for model in models:  # every row names its organization, and goes with it
        column = model.__table__.c[tenant_column(model)]
        assert not column.nullable, model
        referred = {key.target_fullname for key in column.foreign_keys}
        assert model.__tablename__ == "organizations" or "organizations.id" in referred, model
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert row_level_security_gaps(conn, models) == []
    finally:
        engine.dispose()


def test_the_service_role_only_inserts_and_reads_append_only_models(database_url: str) -> None:
    role = Settings(_env_file=None, DATABASE_URL=database_url).APP_DATABASE_ROLE  # type: ignore[call-arg]
    tables = append_only_tables(Base)
    assert "audit_events" in tables
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            granted = {
                (table, privilege): conn.execute(
                    text("SELECT has_table_privilege(:role, :table, :privilege)"),
                    {"role": role, "table": table, "privilege": privilege},
                ).scalar_one()
                for table in tables
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
            }
    finally:
        engine.dispose()
    assert {key for key, allowed in granted.items() if allowed} == {
        (table, privilege) for table in tables for privilege in ("SELECT", "INSERT")
    }


def test_every_model_with_an_organization_is_tenant_owned_or_says_why_not() -> None:
    unmarked = [
        mapper.class_.__name__
        for mapper in Base.registry.mappers
        if "organization_id" in mapper.columns
        and not issubclass(mapper.class_, TenantOwned)
        and not getattr(mapper.class_, "not_tenant_owned_because", "")
    ]
    assert unmarked == []


class _Scratch(DeclarativeBase):
    pass


class _Note(TenantOwned, _Scratch):
    """A tenant-owned model whose table the test below creates without (then with) its policies."""

    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)


def test_the_check_finds_a_tenant_table_left_without_policies(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:  # rolled back: the shared database keeps its schema
            conn.execute(text("CREATE TABLE notes (id int PRIMARY KEY, organization_id uuid NOT NULL)"))
            assert row_level_security_gaps(conn, [_Note]) == [
                "notes: row-level security is not enabled",
                *(f"notes: no policy for {command_}" for command_ in COMMANDS),
            ]
            conn.execute(text("ALTER TABLE notes ENABLE ROW LEVEL SECURITY"))
            conn.execute(text("CREATE POLICY too_wide ON notes USING (true)"))
            assert len(row_level_security_gaps(conn, [_Note])) == 5
            conn.execute(text("DROP POLICY too_wide ON notes"))
            conn.execute(
                text("CREATE POLICY tenant_isolation ON notes USING (organization_id = app_current_org())")
            )
            assert row_level_security_gaps(conn, [_Note]) == []
            conn.rollback()
    finally:
        engine.dispose()
