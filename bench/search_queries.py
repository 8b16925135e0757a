"""Times the conversation lists and searches as the service runs them (decision 0041): its statements,
as its database role under row-level security with one organization as tenant, the search answered the
way the service chooses (the syntax-and-estimate round trip included). Not through HTTP: this is for
choosing indexes and strategies; bench/run.py measures requests.

    psql ... -v orgs=21 -v big_conversations=60000 -v small_conversations=3000 -v messages_per=10 \\
        -f bench/seed_search.sql          # as the database owner, on a migrated database
    .venv/bin/python bench/search_queries.py postgresql://owner@host/db <organization id> [role]
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from aisupport.conversations.conversation_repository import (
    BROAD_ABOVE,
    ConversationFilters,
    conversations_query,
)
from aisupport.conversations.models import Message
from aisupport.core.db import rows_of

RUNS = 20


def main(url: str, organization: uuid.UUID, role: str = "aisupport_app") -> None:
    conn = psycopg.connect(url, autocommit=True)

    def first(query: str, *args: object) -> Any:
        row = _any(conn).execute(query, args).fetchone()
        assert row is not None, query
        return row[0]

    agent = first(
        "SELECT assignee_id FROM conversations WHERE organization_id = %s AND status = 'open'"
        " AND assignee_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        organization,
    )
    inbox = first("SELECT id FROM inboxes WHERE organization_id = %s LIMIT 1", organization)
    team = first("SELECT id FROM teams WHERE organization_id = %s LIMIT 1", organization)
    conversation = first("SELECT id FROM conversations WHERE organization_id = %s LIMIT 1", organization)
    conn.execute("SET plan_cache_mode = force_custom_plan")
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    conn.execute("SELECT set_config('app.current_org', %s, false)", (str(organization),))

    cases: dict[str, dict[str, Any]] = {
        "default: open, assignee=me": {"filters": ConversationFilters(status="open", assignee_id=agent)},
        "all, newest first": {"filters": ConversationFilters()},
        "open in an inbox": {"filters": ConversationFilters(status="open", inbox_id=inbox)},
        "open, unassigned, team": {
            "filters": ConversationFilters(status="open", unassigned=True, team_id=team)
        },
        "open, urgent": {"filters": ConversationFilters(status="open", priority="urgent")},
        "tags tag5 and tag7": {"filters": ConversationFilters(tags=("tag5", "tag7"))},
        "tag tag3, open": {"filters": ConversationFilters(tags=("tag3",), status="open")},
    }
    for word in ("w5000", "w300", "w20", "w1", "w300 w20", '"w1 w2"', "w20 -w1", "lovelace"):
        cases[f"q={word}"] = {"filters": ConversationFilters(), "search": word}
        cases[f"q={word} relevance"] = {"filters": ConversationFilters(), "search": word, "sort": "relevance"}
    cases["q=w300, open"] = {"filters": ConversationFilters(status="open"), "search": "w300"}

    def timed(case: dict[str, Any]) -> tuple[int, list[float], str]:
        times, path = [], ""
        for _ in range(RUNS):
            start = time.perf_counter()
            walk = False
            if case.get("search"):
                row = conn.execute(
                    "SELECT querytree(websearch_to_tsquery('simple', %s)),"
                    " conversation_search_estimate(%s, %s)",
                    (case["search"], organization, case["search"]),
                ).fetchone()
                assert row is not None
                if case.get("sort", "last_activity") == "last_activity":
                    walk = row[1] > BROAD_ABOVE
                    path = f"{'walk' if walk else 'collect'} (estimate {row[1]:.0f})"
                else:
                    path = "collect"
            count = len(_rows(conn, conversations_query(organization, limit=51, broad=walk, **case)))
            times.append((time.perf_counter() - start) * 1000)
        return count, sorted(times), path

    print(f"{'request':32s} rows  p50 ms   p95 ms  path")
    for name, case in cases.items():
        count, times, path = timed(case)
        print(f"{name:32s} {count:4d} {statistics.median(times):7.2f} {times[-2]:8.2f}  {path}")
    messages = (
        rows_of(Message, organization)
        .where(Message.conversation_id == conversation)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(51)
    )
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        _rows(conn, messages)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"{'messages of one, last 50':32s} {'':4s} {statistics.median(times):7.2f} {times[-2]:8.2f}")


def _rows(conn: psycopg.Connection[Any], query: Select[Any]) -> list[Any]:
    compiled = query.compile(dialect=postgresql.dialect())
    return list(_any(conn).execute(str(compiled), compiled.params).fetchall())


def _any(conn: psycopg.Connection[Any]) -> Any:
    """The connection, for queries built at run time (psycopg types them as literal strings only)."""
    return conn


if __name__ == "__main__":
    main(sys.argv[1], uuid.UUID(sys.argv[2]), *sys.argv[3:])
