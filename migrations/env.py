"""Alembic environment: runs migrations on a synchronous psycopg connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from aisupport.core.db import async_url
from aisupport.models import Base, is_ours

config = context.config
target_metadata = Base.metadata
MIGRATION_LOCK_KEY = 0x616973757070  # 'aisupp'


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from aisupport.core.config import Settings
        from aisupport.main import database_url

        url = database_url(Settings())
    return async_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_locked(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, compare_type=True, include_name=is_ours
    )
    with context.begin_transaction():
        # Replicas starting together apply migrations one at a time; the lock ends with the transaction.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_locked(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run_locked(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
