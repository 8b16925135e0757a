"""The request session's guard: a connection is handed back mid-request only if nothing was written."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import literal, select, text

from aisupport.core.db import plan_for_values, release_connection
from aisupport.core.jobs import defer
from aisupport.core.tenancy import tenant_session


@pytest.mark.parametrize(
    "write",
    [
        "UPDATE users SET full_name = full_name WHERE false",
        "job",
        "flush",
    ],
)
async def test_release_connection_refuses_after_any_kind_of_write(client: AsyncClient, write: str) -> None:
    from aisupport.accounts.models import User

    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        await db.execute(select(literal(1)))
        if write == "job":
            await defer(db, "auth:send_notice", to="x@example.com", template="signup_existing", values={})
        elif write == "flush":
            db.add(
                User(
                    id=uuid.uuid4(),
                    email=f"{uuid.uuid4().hex}@x.io",
                    email_normalized=f"{uuid.uuid4().hex}@x.io",
                    password_hash="x",
                )
            )
            await db.flush()
        else:
            await db.execute(text(write))
        with pytest.raises(RuntimeError, match="writes early"):
            await release_connection(db)
        await db.rollback()


async def test_release_connection_commits_a_read_and_the_next_transaction_starts_clean(
    client: AsyncClient,
) -> None:
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        await db.execute(select(literal(1)))
        await release_connection(db)
        assert not db.in_transaction()
        await db.execute(text("UPDATE users SET full_name = full_name WHERE false"))
        await db.commit()
        await db.execute(select(literal(1)))
        await release_connection(db)  # the earlier write belonged to a finished transaction


SETTINGS = text(
    "SELECT current_setting('app.current_org', true), current_setting('app.current_user', true),"
    " current_setting('plan_cache_mode')"
)


async def test_the_tenant_and_plan_settings_last_one_transaction(client: AsyncClient) -> None:
    """Sent with BEGIN (core.tenancy.apply_tenant) or once the transaction has begun, the settings hold
    for that transaction only, on a pooled connection the next transaction reuses."""
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    org, user = uuid.uuid4(), uuid.uuid4()
    async with tenant_session(sessions, organization_id=org, user_id=user) as db:
        assert tuple((await db.execute(SETTINGS)).one()) == (str(org), str(user), "auto")
    async with tenant_session(sessions, organization_id=org) as db:
        await plan_for_values(db)  # before BEGIN: sent with it
        assert tuple((await db.execute(SETTINGS)).one()) == (str(org), "", "force_custom_plan")
    async with tenant_session(sessions, organization_id=org) as db:
        assert tuple((await db.execute(SETTINGS)).one())[2] == "auto"
        await plan_for_values(db)  # in the transaction: at once
        assert tuple((await db.execute(SETTINGS)).one())[2] == "force_custom_plan"
    async with sessions() as db:  # no tenant: nothing set
        assert tuple((await db.execute(SETTINGS)).one())[:2] in {("", ""), (None, None)}
