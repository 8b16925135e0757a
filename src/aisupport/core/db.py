"""The database engine, the declarative base (with its tenant-owned and append-only models, and the
scoped reads of tenant rows) and the per-request session."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Protocol, Self, TypeVar

from fastapi import Depends, Request
from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    MetaData,
    Select,
    Table,
    event,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, ORMExecuteState, Session, mapped_column

from aisupport.core.config import Settings
from aisupport.core.errors import AppError
from aisupport.core.tenancy import CUSTOM_PLANS, REQUEST_STATE, SET_CUSTOM_PLANS, TenantSession

# Stable constraint names, so migrations can address them (Alembic's recommended convention).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantOwned:
    """A model whose rows belong to one organization (the tenant), named by `organization_id`.

    Declaring a model with this mixin is all it takes to be treated as tenant-owned: the tests derive
    their table list from it (tests/test_migrations.py: row-level security enabled, with policies for
    reads and writes on the tenant column; tests/organizations/test_tenant_isolation.py: an unscoped
    read sees only the current tenant's rows), and repositories read it through `scoped`.

    The column is `organization_id NOT NULL` referring to the organization (deleted with it); a model
    may redeclare it (part of its primary key, say). `organizations` itself is tenant-owned through its
    own `id`: it declares `organization_id = synonym("id")`, and the checks follow the synonym. A model
    with an `organization_id` that is not tenant-owned says why in `not_tenant_owned_because` (a test
    asks every other one to be TenantOwned).
    """

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))


class AppendOnly:
    """A model whose rows the service may insert and read, never update or delete: its role is granted
    no more (`core.tenancy.provision_app_role`, given `append_only_tables`)."""


def append_only_tables(base: type[DeclarativeBase]) -> list[str]:
    """The tables of every append-only model mapped on `base`."""
    tables = [mapper.local_table for mapper in base.registry.mappers if issubclass(mapper.class_, AppendOnly)]
    return sorted(table.name for table in tables if isinstance(table, Table))


def tenant_column(model: type[TenantOwned]) -> str:
    """The name of the table column that says which organization a row of `model` belongs to."""
    column = model.organization_id.expression
    assert isinstance(column, Column), model
    return column.name


def tenant_models(base: type[DeclarativeBase]) -> list[type[TenantOwned]]:
    """Every tenant-owned model mapped on `base`, by table name."""
    found = [mapper.class_ for mapper in base.registry.mappers if issubclass(mapper.class_, TenantOwned)]
    return sorted(found, key=lambda model: str(getattr(model, "__tablename__", "")))


class Filterable(Protocol):
    """A statement with a WHERE clause: select(), update() or delete()."""

    def where(self, *whereclause: ColumnElement[bool]) -> Self: ...


StatementT = TypeVar("StatementT", bound=Filterable)
TenantT = TypeVar("TenantT", bound=TenantOwned)


def scoped(statement: StatementT, model: type[TenantOwned], organization_id: uuid.UUID) -> StatementT:
    """`statement` confined to the rows of `model` that belong to `organization_id`: how repositories
    read and change tenant-owned rows (row-level security confines them again in the database)."""
    return statement.where(model.organization_id == organization_id)


def rows_of(model: type[TenantT], organization_id: uuid.UUID) -> Select[TenantT]:
    """`select(model)` confined to one organization's rows."""
    return scoped(select(model), model, organization_id)


def row_of(
    model: type[TenantT], organization_id: uuid.UUID, *where: Any, lock: bool = False
) -> Select[TenantT]:
    """The row of one organization matching `where`; with `lock`, locked until the transaction ends and
    read as the database has it now (a writer that waited sees what the one before it left)."""
    query = rows_of(model, organization_id).where(*where)
    return query.with_for_update().execution_options(populate_existing=True) if lock else query


def async_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the operator wrote."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_for(settings: Settings, url: str, *, pool_size: int | None = None) -> AsyncEngine:
    return create_engine(
        url,
        pool_size=pool_size or settings.DATABASE_POOL_SIZE,
        timeout=settings.DATABASE_TIMEOUT_SECONDS,
        statement_timeout=settings.DATABASE_STATEMENT_TIMEOUT_SECONDS,
    )


def create_engine(
    url: str, *, pool_size: int = 10, timeout: float = 5, statement_timeout: float = 30
) -> AsyncEngine:
    """An engine that never waits unbounded: connecting and pool checkout give up after `timeout`
    seconds (the request then answers 503), statements after `statement_timeout`.

    No pre-ping (a round trip on every checkout): a connection that died with a database restart fails
    its first statement, SQLAlchemy sees a disconnect and invalidates every pooled connection of that
    age, so that request answers 503 and the next ones connect afresh."""
    from aisupport.core.metrics import InstrumentedPool

    return create_async_engine(
        async_url(url),
        poolclass=InstrumentedPool,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeout,
        connect_args={
            "connect_timeout": max(1, round(timeout)),
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            "client_encoding": "utf8",
        },
        json_deserializer=_json_from_utf8,
    )


def _json_from_utf8(data: bytes) -> Any:
    """A json/jsonb value as the connection receives it (UTF-8: `client_encoding` above), decoded
    without json.loads' guess at the encoding of bytes (a fifth of its cost on the small documents of a
    conversation list, three per row)."""
    return json.loads(str(data, "utf-8"))


def create_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, object] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of the service; `info` is copied into each (what the layers above hang on a session,
    such as the principal cache that evicts after commit)."""
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=TenantSession, info=info
    )


AfterCommit = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run `action` once the request's transaction has committed (never on rollback)."""
    session.info.setdefault("after_commit", []).append(action)


# What the current transaction has written, tracked without asking the database: a flush with changes,
# a deferred job, or any statement through the session that is not a select() construct (raw text counts
# as a write; the tenant's set_config goes through the connection and does not). Cleared when the
# transaction ends.
WROTE = "wrote_in_transaction"


async def release_connection(session: AsyncSession) -> None:
    """Return the connection to the pool before slow work that needs no database (password hashing).

    Only for a request that has written nothing yet: it ends the read transaction, and the next query
    starts another. Holding a connection through a hash would let a login storm empty the pool.
    """
    if session.new or session.dirty or session.deleted or session.info.get(WROTE):
        raise RuntimeError("release_connection would commit this request's writes early")
    await session.commit()


async def plan_for_values(session: AsyncSession) -> None:
    """Have PostgreSQL plan the session's statements for their values from now on, never with a
    generic plan, for statements whose best plan depends on the organization's size (lists, searches).

    psycopg prepares a statement after 5 executions on a connection, and PostgreSQL may then keep a
    generic plan, made for an average organization (`organization_id = $1`), which can read thousands
    of rows for a large one (decision 0044). The setting is transaction-local: it travels with the
    tenant in the round trip of BEGIN (`core.tenancy.apply_tenant`), or is set at once in a transaction
    already begun. Other statements keep their cached plans, which cost no planning."""
    session.info[CUSTOM_PLANS] = True
    if session.in_transaction():
        await (await session.connection()).exec_driver_sql(SET_CUSTOM_PLANS)


def mark_written(session: AsyncSession | Session) -> None:
    """Note that the current transaction has written (for writes the ORM does not see, such as jobs)."""
    session.info[WROTE] = True


@event.listens_for(TenantSession, "before_flush")
def _flush_writes(session: Session, flush_context: object, instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        mark_written(session)


@event.listens_for(TenantSession, "do_orm_execute")
def _statement_writes(state: ORMExecuteState) -> None:
    if not state.is_select:
        mark_written(state.session)


@event.listens_for(TenantSession, "after_commit")
@event.listens_for(TenantSession, "after_rollback")
def _transaction_ended(session: Session) -> None:
    session.info.pop(WROTE, None)


@asynccontextmanager
async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session, scoped to the tenant its principal named: commits once on success, rolls
    back on any error. Routes take it as `DbSession`; a route that needs the database only sometimes
    opens it here, when it does."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        session.info[REQUEST_STATE] = request.state
        try:
            yield session
        except AppError as error:
            if error.keep_changes:
                await _commit(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await _commit(session)


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request_session(request) as session:
        yield session


async def _commit(session: AsyncSession) -> None:
    await session.commit()
    for action in session.info.pop("after_commit", []):
        await action()


# scope="function": the commit happens before the response is sent, so a failed commit is never
# reported to the client as a success.
DbSession = Annotated[AsyncSession, Depends(db_session, scope="function")]
