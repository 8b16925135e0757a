"""The request session's guard: a connection is handed back mid-request only if nothing was written."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import literal, select, text

from aisupport.core.db import release_connection
from aisupport.core.jobs import defer


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
