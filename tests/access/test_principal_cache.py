"""The principal cache in one process: hits need no database, a miss is resolved once however many
requests ask at the same time, and a token is still refused once it expires."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from httpx import AsyncClient
from sqlalchemy import event

from tests.conftest import bearer, signup


@contextmanager
def statements(client: AsyncClient) -> Iterator[list[str]]:
    """The SQL statements the app behind `client` sends while the block runs (an engine event)."""
    seen: list[str] = []
    engine = client.app.state.engine.sync_engine  # type: ignore[attr-defined]

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_cached_principal_and_profile_need_no_database(client: AsyncClient) -> None:
    headers = bearer((await signup(client)).json()["access_token"])
    assert (await client.get("/auth/me", headers=headers)).status_code == 200
    with statements(client) as seen:
        answers = [await client.get("/auth/me", headers=headers) for _ in range(5)]
    assert {answer.status_code for answer in answers} == {200}
    assert seen == []


async def test_a_miss_is_resolved_once_for_concurrent_requests(client: AsyncClient) -> None:
    headers = bearer((await signup(client)).json()["access_token"])
    client.app.state.auth.principals.cache.clear()  # type: ignore[attr-defined]
    with statements(client) as seen:
        answers = await asyncio.gather(*(client.get("/auth/me", headers=headers) for _ in range(20)))
    assert {answer.status_code for answer in answers} == {200}
    assert sum("session_principal" in statement for statement in seen) == 1
    profile_reads = [statement for statement in seen if "FROM users" in statement]
    assert len(profile_reads) == 1
