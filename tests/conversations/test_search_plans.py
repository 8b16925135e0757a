"""The lists and the search are served by the indexes made for them (decision 0041): the queries the
repository builds are explained (EXPLAIN, FORMAT JSON, with the values bound as the service binds them)
as the service's role, under row-level security with the organization as tenant, in a database holding
many conversations and messages of one organization and of a neighbour. The GIN lookups run inside
SECURITY DEFINER functions (as the owner): their statements are explained as the owner."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from aisupport.conversations.conversation_repository import (
    BROAD_ABOVE,
    RELEVANCE_WINDOW,
    ConversationFilters,
    conversations_query,
)
from aisupport.conversations.models import Message
from aisupport.core.config import Settings
from aisupport.core.db import rows_of

ORGANIZATION = uuid.UUID("00000000-0000-4000-8000-00000000f7a0")
NEIGHBOUR = uuid.UUID("00000000-0000-4000-8000-00000000f7a1")
AGENT = uuid.UUID("00000000-0000-4000-8000-00000000f7b0")
CONVERSATIONS = 8000  # per organization, 4 messages each


SEED = """
INSERT INTO organizations (id, name, slug) VALUES (%(org)s, 'plans', %(slug)s);
INSERT INTO users (id, email, email_normalized, password_hash)
    VALUES (%(user)s, %(email)s, %(email)s, 'x') ON CONFLICT DO NOTHING;
INSERT INTO memberships (organization_id, user_id, role) VALUES (%(org)s, %(user)s, 'agent');
INSERT INTO inboxes (id, organization_id, name, kind)
    SELECT gen_random_uuid(), %(org)s, 'inbox ' || n, 'api' FROM generate_series(0, 4) AS n;
INSERT INTO teams (id, organization_id, name)
    SELECT gen_random_uuid(), %(org)s, 'team ' || n FROM generate_series(0, 4) AS n;
INSERT INTO contacts (id, organization_id, name, email)
    SELECT gen_random_uuid(), %(org)s, 'Person ' || n, 'person' || n || '@example.com'
    FROM generate_series(1, 2000) AS n;
INSERT INTO conversations (id, organization_id, number, inbox_id, contact_id, subject, status, priority,
                           assignee_id, team_id, tags, last_activity_at, updated_at, created_at)
    WITH i AS (SELECT array_agg(id) AS ids FROM inboxes WHERE organization_id = %(org)s),
         k AS (SELECT array_agg(id) AS ids FROM contacts WHERE organization_id = %(org)s),
         t AS (SELECT array_agg(id) AS ids FROM teams WHERE organization_id = %(org)s)
    SELECT gen_random_uuid(), %(org)s, n, i.ids[1 + n %% 5], k.ids[1 + n %% 2000], 'subject w' || n %% 997,
           (ARRAY['open', 'pending', 'resolved', 'resolved', 'resolved', 'resolved'])[1 + n %% 6],
           (ARRAY['none', 'low', 'normal', 'high', 'urgent'])[1 + n %% 5],
           CASE WHEN n %% 20 = 0 THEN %(user)s::uuid END,
           t.ids[1 + n %% 5],
           CASE WHEN n %% 500 = 0 THEN ARRAY['rare'] ELSE ARRAY['tag' || n %% 3] END,
           now() - n * interval '1 minute', now(), now() - n * interval '1 minute'
    FROM generate_series(1, %(conversations)s) AS n, i, k, t
    ORDER BY random();
INSERT INTO messages (id, organization_id, conversation_id, kind, private, body, author_type, created_at)
    SELECT gen_random_uuid(), c.organization_id, c.id, 'incoming', false,
           'common words w' || (c.number * 4 + m) %% 1009 || ' and more', 'contact',
           c.created_at + m * interval '1 second'
    FROM conversations c, generate_series(1, 4) AS m WHERE c.organization_id = %(org)s
    ORDER BY random();
"""


@pytest.fixture(scope="module")
def owner_connection(database_url: str) -> Iterator[psycopg.Connection]:
    """The database owner (not bound by row-level security), with two organizations of 8,000
    conversations, 32,000 messages and 2,000 contacts each; removed afterwards."""
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        for organization in (ORGANIZATION, NEIGHBOUR):
            values = {
                "org": organization,
                "slug": f"plans-{organization.hex[-6:]}",
                "user": AGENT,
                "email": "plans@example.com",
                "conversations": CONVERSATIONS,
            }
            for statement in SEED.split(";\n"):
                if statement.strip():
                    conn.execute(statement, values)  # type: ignore[call-overload]
        # VACUUM as autovacuum would: it also moves the rows just added out of the GIN indexes' pending
        # lists, whose scan the planner (rightly) counts against them until then.
        conn.execute(
            "VACUUM ANALYZE organizations, memberships, inboxes, teams, contacts, conversations, messages"
        )
        try:
            yield conn
        finally:
            conn.execute("RESET ROLE")
            conn.execute("DELETE FROM organizations WHERE id IN (%s, %s)", (ORGANIZATION, NEIGHBOUR))
            conn.execute("DELETE FROM users WHERE id = %s", (AGENT,))


@pytest.fixture
def as_service(owner_connection: psycopg.Connection, settings: Settings) -> Iterator[psycopg.Connection]:
    """The same connection as the service's role, the organization its tenant (row-level security on)."""
    owner_connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.APP_DATABASE_ROLE)))
    owner_connection.execute("SELECT set_config('app.current_org', %s, false)", (str(ORGANIZATION),))
    try:
        yield owner_connection
    finally:
        owner_connection.execute("RESET ROLE")
        owner_connection.execute("SELECT set_config('app.current_org', '', false)")


def _plan(conn: psycopg.Connection, query: Select[Any] | str, params: Any = None) -> dict[str, Any]:
    if not isinstance(query, str):
        compiled = query.compile(dialect=postgresql.dialect())
        query, params = str(compiled), compiled.params
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()  # type: ignore[call-overload]
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found, todo = [], [plan]
    while todo:
        node = todo.pop()
        found.append(node)
        todo.extend(node.get("Plans", []))
    return found


def _indexes(plan: dict[str, Any]) -> set[str]:
    return {str(node["Index Name"]) for node in _nodes(plan) if "Index Name" in node}


def _kinds(plan: dict[str, Any]) -> set[str]:
    return {str(node["Node Type"]) for node in _nodes(plan)}


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"status": "open", "assignee_id": AGENT}, "ix_conversations_org_assignee_status_activity"),
        ({"status": "pending"}, "ix_conversations_org_status_activity"),
        ({"status": "open", "priority": "urgent"}, "ix_conversations_org_status_activity"),
        ({"status": "open", "team_id": "teams"}, "ix_conversations_org_team_status_activity"),
        ({"status": "open", "inbox_id": "inboxes"}, "ix_conversations_org_inbox_status_activity"),
        ({}, "ix_conversations_organization_id_last_activity_at_id"),
    ],
)
def test_lists_read_an_index_in_page_order(
    as_service: psycopg.Connection, filters: dict[str, Any], index: str
) -> None:
    """Equality on the leading columns, then the keyset order: no sort, no sequential scan."""
    for name in ("team_id", "inbox_id"):
        if name in filters:  # the first team or inbox of the organization
            row = as_service.execute(
                sql.SQL("SELECT id FROM {} WHERE organization_id = %s ORDER BY id LIMIT 1").format(
                    sql.Identifier(filters[name])
                ),
                (ORGANIZATION,),
            ).fetchone()
            assert row is not None
            filters = {**filters, name: row[0]}
    plan = _plan(as_service, conversations_query(ORGANIZATION, ConversationFilters(**filters), limit=51))
    assert index in _indexes(plan), plan
    assert not _kinds(plan) & {"Seq Scan", "Sort", "Incremental Sort"}, plan


def test_a_tag_is_checked_along_the_list_order(as_service: psycopg.Connection) -> None:
    query = conversations_query(ORGANIZATION, ConversationFilters(status="open", tags=("tag1",)), limit=51)
    plan = _plan(as_service, query)
    assert "ix_conversations_org_status_activity" in _indexes(plan), plan
    assert not _kinds(plan) & {"Seq Scan", "Sort"}, plan


@pytest.mark.parametrize("sort", ["last_activity", "relevance"])
def test_a_search_collects_matches_through_the_gin_indexes(as_service: psycopg.Connection, sort: str) -> None:
    query = conversations_query(
        ORGANIZATION, ConversationFilters(), search="w7 or person7", sort=sort, limit=51
    )  # type: ignore[arg-type]
    plan = _plan(as_service, query)
    assert "Function Scan" in _kinds(plan), plan  # conversation_search_hits
    assert "Seq Scan" not in _kinds(plan), plan
    assert _rows(as_service, query)
    # Inside the function, as its owner: each of the three lookups through its GIN index.
    as_service.execute("RESET ROLE")
    body = as_service.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = 'conversation_search_hits'"
    ).fetchone()
    assert body is not None
    statement = body[0].replace("$1", "%(org)s::uuid").replace("$2", "%(q)s")
    inner = _plan(as_service, statement, {"org": ORGANIZATION, "q": "w7 or person7"})
    assert {"ix_messages_search", "ix_conversations_search", "ix_contacts_search"} <= _indexes(inner), inner
    assert "Seq Scan" not in _kinds(inner), inner


def test_a_common_word_walks_newest_first_and_finds_the_same(as_service: psycopg.Connection) -> None:
    walk = conversations_query(
        ORGANIZATION, ConversationFilters(status="open"), search="common", broad=True, limit=51
    )
    plan = _plan(as_service, walk)
    assert {
        "ix_conversations_org_status_activity",
        "ix_messages_organization_id_conversation_id_created_at_id",
    } <= _indexes(plan), plan
    assert not _kinds(plan) & {"Seq Scan", "Sort"}, plan
    # The two ways give the same page.
    collect = conversations_query(ORGANIZATION, ConversationFilters(status="open"), search="common", limit=51)
    walked = [row[0] for row in _rows(as_service, walk)]
    collected = [row[0] for row in _rows(as_service, collect)]
    assert walked == collected
    assert len(walked) == 51


def test_a_common_word_by_relevance_ranks_the_most_recent_matches_only(
    as_service: psycopg.Connection,
) -> None:
    filters = ConversationFilters(status="open")
    broad = conversations_query(
        ORGANIZATION, filters, search="common", sort="relevance", broad=True, limit=51
    )
    plan = _plan(as_service, broad)
    # The window is walked newest first through the list's index, not collected through GIN (how its
    # documents are then read depends on the sizes: bench/inbox.py measures it at scale).
    assert "ix_conversations_org_status_activity" in _indexes(plan), plan
    assert "Function Scan" not in _kinds(plan), plan  # conversation_search_hits: every match
    ranked = _rows(as_service, broad)
    assert len(ranked) == 51
    ranks = [row[-2] for row in ranked]
    assert ranks == sorted(ranks, reverse=True)
    # Every conversation it ranks is among the RELEVANCE_WINDOW most recently active matches.
    newest = conversations_query(ORGANIZATION, filters, search="common", broad=True, limit=RELEVANCE_WINDOW)
    window = {row[0] for row in _rows(as_service, newest)}
    assert {row[0] for row in ranked} <= window


def test_the_estimate_tells_common_words_from_rare_ones(as_service: psycopg.Connection) -> None:
    def estimate(word: str, organization: uuid.UUID = ORGANIZATION) -> float:
        row = as_service.execute(
            "SELECT conversation_search_estimate(%s, %s)", (organization, word)
        ).fetchone()
        assert row is not None
        return float(row[0])

    assert estimate("common") > BROAD_ABOVE  # in every message of the organization
    assert estimate("w7") < BROAD_ABOVE
    assert estimate("common", NEIGHBOUR) == 0  # only for the current tenant


def test_the_last_messages_of_a_conversation_come_from_their_index(as_service: psycopg.Connection) -> None:
    conversation = as_service.execute(
        "SELECT id FROM conversations WHERE organization_id = %s LIMIT 1", (ORGANIZATION,)
    ).fetchone()
    assert conversation is not None
    query = (
        rows_of(Message, ORGANIZATION)
        .where(Message.conversation_id == conversation[0])
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(51)
    )
    plan = _plan(as_service, query)
    assert _indexes(plan) == {"ix_messages_organization_id_conversation_id_created_at_id"}, plan
    assert not _kinds(plan) & {"Seq Scan", "Sort", "Bitmap Heap Scan"}, plan
    assert "search" not in str(query.compile(dialect=postgresql.dialect())).split("FROM")[0]  # deferred


def _rows(conn: psycopg.Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    compiled = query.compile(dialect=postgresql.dialect())
    return conn.execute(str(compiled), compiled.params).fetchall()  # type: ignore[call-overload]
