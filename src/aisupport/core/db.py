"""The database engine, the declarative base and the per-request session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, ORMExecuteState, Session, mapped_column

from aisupport.core.config import Settings
from aisupport.core.errors import AppError
from aisupport.core.tenancy import REQUEST_STATE, TenantSession

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


def async_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the operator wrote."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_for(settings: Settings, url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_engine(
        url,
        pool_size=pool_size,
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
        },
    )


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
