"""Tenant isolation in the database itself.

Tenant-owned tables have row-level security policies that read two per-transaction settings,
`app.current_org` and `app.current_user` (migration f91660802374). This module:

- keeps a session's tenant in one place, its scope (`REQUEST_STATE`: the request's `request.state`, or
  a stand-in of `tenant_session`), written by `bind_request_tenant` only, and applies it with
  `set_config(..., is_local => true)` at the start of every transaction of that session, so it never
  outlives a transaction or leaks to the next user of a pooled connection. Who may bind a tenant is
  decided once (decision 0032): the request's principal dependency and `access.tenancy.act_as` (both
  in `access`), and `tenant_session` for work outside a request;
- gives the service its own database role, neither superuser nor table owner, so the policies bind it
  (`provision_app_role`, run by `aisupport migrate` as the owner), and refuses to serve as anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import psycopg
import structlog
from psycopg import sql
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_

from aisupport.core.config import Settings

log = structlog.get_logger("aisupport.tenancy")

_TENANT_KEY = "tenant"
_APPLY_TENANT = text(
    "SELECT set_config('app.current_org', :organization_id, true),"
    " set_config('app.current_user', :user_id, true)"
)
# Migrations' bookkeeping is the owner's alone. (Append-only tables come from the models: AppendOnly.)
OWNER_ONLY_TABLES = ("alembic_version",)


class TenantSession(Session):
    """The ORM session class of the service: applies its tenant at the start of each transaction."""


# Where a session finds its tenant, read when each transaction begins: the request's state for a
# request's session (the session is created before the principal is resolved, used after), a
# stand-in of its own for a `tenant_session`.
REQUEST_STATE = "request_state"


# A session whose statements are to be planned for their values (`core.db.plan_for_values`).
CUSTOM_PLANS = "custom_plans"
SET_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


@event.listens_for(TenantSession, "after_begin")
def _apply_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    tenant = getattr(session.info.get(REQUEST_STATE), _TENANT_KEY, None)
    if tenant is not None:
        apply_tenant(connection, tenant, custom_plans=bool(session.info.get(CUSTOM_PLANS)))
    elif session.info.get(CUSTOM_PLANS):
        connection.exec_driver_sql(SET_CUSTOM_PLANS)


def apply_tenant(connection: Connection, tenant: dict[str, str], *, custom_plans: bool = False) -> None:
    """Name `tenant` (`_tenant_of`) for the transaction `connection` has just begun, in the round trip
    that begins it in the database: `BEGIN; SELECT set_config(..., true), ...` as one simple query.

    Every transaction of a tenant's session starts this way, so sending the settings with the `BEGIN`
    the driver would otherwise send on its own saves one round trip per transaction (about a quarter of
    a small read's cost, decision 0044). The settings are still transaction-local (`is_local`), so they
    end with the transaction exactly as before. The driver (psycopg) starts a transaction lazily, with
    the first statement: it is told to send nothing of its own for this one statement (autocommit for
    its duration, no BEGIN added), and it then finds the connection in the transaction it opened and
    goes on as if it had begun it (COMMIT and ROLLBACK as usual). Anything else (a connection already in
    a transaction, another driver) gets the settings as a statement of their own, as before. With
    `custom_plans`, the transaction's statements are planned for their values (`core.db.plan_for_values`).
    """
    raw = connection.connection.driver_connection
    if (
        not isinstance(raw, psycopg.AsyncConnection)
        or raw.autocommit
        or raw._pipeline is not None
        or raw.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE
    ):
        connection.execute(_APPLY_TENANT, tenant)
        if custom_plans:
            connection.exec_driver_sql(SET_CUSTOM_PLANS)
        return
    statement = sql.SQL(
        "{}; SELECT set_config('app.current_org', {}, true), set_config('app.current_user', {}, true){}"
    ).format(
        sql.SQL(_begin_statement(raw)),
        sql.Literal(tenant["organization_id"]),
        sql.Literal(tenant["user_id"]),
        sql.SQL(", set_config('plan_cache_mode', 'force_custom_plan', true)" if custom_plans else ""),
    )
    await_(_begin_with(raw, statement))


def _begin_statement(raw: psycopg.AsyncConnection[Any]) -> str:
    """The BEGIN psycopg would send for this connection (its isolation level and access mode)."""
    parts = ["BEGIN"]
    if raw.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + psycopg.IsolationLevel(raw.isolation_level).name.replace("_", " "))
    if raw.read_only is not None:
        parts.append("READ ONLY" if raw.read_only else "READ WRITE")
    if raw.deferrable is not None:
        parts.append("DEFERRABLE" if raw.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


async def _begin_with(raw: psycopg.AsyncConnection[Any], statement: sql.Composed) -> None:
    # psycopg's own flag, not `set_autocommit`, which refuses to be turned back off once the
    # connection is in the transaction this statement opens.
    raw._autocommit = True  # no BEGIN of its own before this statement
    try:
        # No parameters and never prepared: the simple query protocol, which runs both statements.
        cursor = await raw.execute(statement, prepare=False)
        await cursor.close()
    finally:
        raw._autocommit = False


def _tenant_of(organization_id: uuid.UUID | None, user_id: uuid.UUID | None) -> dict[str, str]:
    return {
        "organization_id": str(organization_id) if organization_id else "",
        "user_id": str(user_id) if user_id else "",
    }


def bind_request_tenant(state: Any, *, organization_id: uuid.UUID | None, user_id: uuid.UUID | None) -> None:
    """Name the tenant of every transaction of this request's session from now on (the principal
    dependency's job; `rebind_request_tenant` for a request that establishes its caller itself)."""
    setattr(state, _TENANT_KEY, _tenant_of(organization_id, user_id))


async def rebind_request_tenant(
    db: AsyncSession, *, organization_id: uuid.UUID | None, user_id: uuid.UUID | None
) -> None:
    """`bind_request_tenant` from inside the request, applied at once to the transaction in progress.

    Only a request's session has a scope to bind: work outside a request opens a `tenant_session`.
    """
    state = db.info.get(REQUEST_STATE)
    if state is None:
        raise RuntimeError("not a request's session: work outside a request opens a tenant_session")
    bind_request_tenant(state, organization_id=organization_id, user_id=user_id)
    if db.in_transaction():
        await (await db.connection()).execute(_APPLY_TENANT, getattr(state, _TENANT_KEY))


@asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
) -> AsyncIterator[AsyncSession]:
    """A session scoped to one organization, for work outside a request's transaction (jobs, a write
    the request itself must not wait for): commits on success, rolls back on error."""
    async with sessionmaker() as session:
        scope = SimpleNamespace()
        bind_request_tenant(scope, organization_id=organization_id, user_id=user_id)
        session.info[REQUEST_STATE] = scope
        async with session.begin():
            yield session


async def in_each_organization(
    sessionmaker: async_sessionmaker[AsyncSession],
    organizations: list[uuid.UUID],
    work: Callable[[AsyncSession, uuid.UUID], Awaitable[int]],
    *,
    batch_size: int,
    max_batches: int,
) -> int:
    """Run `work` (a batch, in a transaction of its own: how many rows it looked at) in each
    organization as its tenant, until a batch comes back short of `batch_size` or `max_batches` ran;
    the total looked at. How periodic jobs work across tenants."""
    total = 0
    for organization_id in organizations:
        for _ in range(max_batches):
            async with tenant_session(sessionmaker, organization_id=organization_id) as db:
                done = await work(db, organization_id)
            total += done
            if done < batch_size:
                break
    return total


def app_database_url(settings: Settings, owner_url: str) -> str:
    """What the service connects as: APP_DATABASE_URL, else the owner's URL with the app role's name."""
    if settings.APP_DATABASE_URL:
        return settings.APP_DATABASE_URL
    url = make_url(owner_url).set(
        username=settings.APP_DATABASE_ROLE, password=settings.APP_DATABASE_PASSWORD
    )
    return url.render_as_string(hide_password=False)


def provision_app_role(settings: Settings, owner_url: str, *, append_only: Sequence[str]) -> None:
    """Create the service's role if needed and grant it what it may do (run as the tables' owner):
    everything on every table but those `append_only` (insert and read) and the owner's own.

    Idempotent; run after every migration so new tables are granted too.
    """
    app_url = make_url(app_database_url(settings, owner_url))
    role = app_url.username
    if not role:
        raise RuntimeError("APP_DATABASE_URL must name a user")
    owner = make_url(owner_url).set(drivername="postgresql")
    with psycopg.connect(owner.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            if settings.APP_DATABASE_URL:
                raise RuntimeError(
                    f"the role {role!r} of APP_DATABASE_URL does not exist; "
                    "create it as docs/tenant-isolation.md shows"
                )
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"
                ).format(sql.Identifier(role))
            )
            log.info("app_role_created", role=role)
        if settings.APP_DATABASE_PASSWORD and not settings.APP_DATABASE_URL:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(settings.APP_DATABASE_PASSWORD)
                )
            )
        _grant(conn, role, str(owner.database), append_only)


def _grant(conn: psycopg.Connection[Any], role: str, database: str, append_only: Sequence[str]) -> None:
    name = sql.Identifier(role)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), name),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
        # Including the two SECURITY DEFINER lookups, which PUBLIC may not run.
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {}").format(name),
        *(
            sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), name)
            for table in append_only
        ),
        *(
            sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), name)
            for table in OWNER_ONLY_TABLES
        ),
    ]
    for statement in statements:
        conn.execute(statement)


async def refuse_privileged_role(engine: AsyncEngine) -> None:
    """Stop at start-up if the service's connection would not be bound by row-level security.

    A database that does not answer yet is left to the readiness probe (`aisupport serve` has already
    migrated through it by then, so in practice the check runs).
    """
    try:
        async with engine.connect() as conn:
            unsafe = (await conn.execute(UNSAFE_ROLE_QUERY)).scalar_one()
            role = (await conn.execute(text("SELECT current_user"))).scalar_one()
    except (OperationalError, InterfaceError) as exc:
        log.warning("database_role_unchecked", reason=type(exc).__name__)
        return
    if unsafe:
        raise RuntimeError(unsafe_role_message(role))


# Unsafe: a superuser or BYPASSRLS role, a member of one, or a member of a table owner's role (owners,
# and roles inheriting from or able to SET ROLE to them, are not bound by row-level security).
UNSAFE_ROLE_QUERY = text(
    """
    SELECT r.rolsuper OR r.rolbypassrls
           OR EXISTS (SELECT 1 FROM pg_tables t
                       WHERE t.schemaname = 'public' AND pg_has_role(current_user, t.tableowner, 'MEMBER'))
           OR EXISTS (SELECT 1 FROM pg_roles p
                       WHERE (p.rolsuper OR p.rolbypassrls) AND pg_has_role(current_user, p.oid, 'MEMBER'))
      FROM pg_roles r WHERE r.rolname = current_user
    """
)


def unsafe_role_message(role: str) -> str:
    return (
        f"the service connects to PostgreSQL as {role!r}, a superuser, a table owner or a role that "
        "bypasses row-level security, so tenant isolation would not hold; connect as the app role "
        "(APP_DATABASE_URL / APP_DATABASE_ROLE, docs/tenant-isolation.md)"
    )
