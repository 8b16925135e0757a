"""The inbox at scale: one organization with 200,000 conversations and 2,000,000 messages, and others.

Run from the repository root with the project's environment: `make bench-inbox`, or
`.venv/bin/python bench/inbox.py [--quick] [--duration S] [--connections N] [--output -]`.

It starts one server the way bench/run.py does (its `running_server`: the same interpreter, a free
loopback port, a fresh embedded PostgreSQL in a temporary folder, every rate limit raised), then:

1. signs up two users through the API: an admin, whose organization is the measured one, and the
   measured agent (a Bearer token of its own), made an `agent` member of the admin's organization;
2. seeds, connected to PostgreSQL as the tables' owner and straight in SQL (`INSERT ... SELECT` over
   `generate_series`, not through the API): in the measured organization `--agents` agents, teams,
   inboxes, `--contacts` contacts, `--conversations` conversations (a mix of statuses, priorities,
   assignees, teams, inboxes and tags) and at least `--messages` messages (incoming and outgoing
   messages whose bodies are drawn from a Zipf-distributed vocabulary, so a word such as "refund" is as
   rare as in real mail, notes, activity lines; one conversation in 100 is a long one); and
   `--other-orgs` other organizations of their own size. Only explicit columns are written, so columns
   added later (nullable or generated) do not break it. Then VACUUM (ANALYZE) of the seeded tables;
3. measures with wrk, one request a phase, every core for the server (no pinning: the database does
   most of the work): GET /health/live (the baseline), GET /auth/me (the p99 reference), the agent's
   default list, filtered lists and searches (a request whose parameters the API does not have yet is
   reported "not available", not run), a conversation, its last 50 messages, and
   POST .../messages over many conversations (bench/wrk/rotate.lua);
4. the physical floor of posting: from a process of its own, the same message row inserted and committed
   through a pool like the server's (core.db.engine_for: same driver and pool size, the app role, the
   tenant set as the server sets it), with as many concurrent tasks as wrk has connections.

Every read's p99 is read against GET /auth/me's (goal at most 10x), the posting rate against the
floor's (goal at least 0.5x). The figures go into docs/benchmarks.md between `<!-- inbox:start -->` and
`<!-- inbox:end -->` (bench/run.py keeps that section when it rewrites the file). Bounded like the other
benchmarks: loopback only, fixed durations, a deadline on every wrk run, the server always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import httpx

from load import clean_redis, owner_conninfo
from run import (
    DEFAULT_OUTPUT,
    HUGE_LIMIT,
    INBOX_END,
    INBOX_START,
    PASSWORD,
    RESULTS,
    CpuShares,
    Phase,
    Processes,
    Server,
    Wrk,
    ensure_wrk,
    format_errors,
    machine_line,
    markdown_table,
    ms,
    percent,
    ratio,
    running_server,
    server_overrides,
    server_settings,
    step,
    text_table,
    write_section,
    wrk_version,
)

TARGET_READ_P99 = 10.0  # every read's p99 <= 10 x GET /auth/me's p99
TARGET_POST_VS_FLOOR = 0.5  # POST .../messages 2xx/s >= 0.5 x the bare INSERT + COMMIT rate
FLOOR_MARKER = "floor-json "
SEED_TIMEOUT_MS = 30 * 60 * 1000  # a statement of the seed may take this long at most
LONG_EVERY, LONG_EXTRA = 100, 100  # one conversation in LONG_EVERY has LONG_EXTRA more messages

# --- text: a vocabulary with Zipf frequencies ----------------------------------------------------------
# Ranked roughly by how often they appear in support mail: the common words first, then the domain.
VOCABULARY = """
the to i and a you my is it for of in this that we on have with be not can your me but are was
please thanks hi hello it's an at do if so as get will from or just what there no would all order any
help when been our how know up out now about one time back need could still has did thank you're
here which account they its was also like today sent see can't more again email issue yesterday new
problem should use some does phone working last only week app after days through same received use
other tried get been make payment card then work want let their two please update answer soon
team question check login password error page website help customer number sorry still before
shipping delivery package charged twice refund invoice billing subscription plan cancel cancelled
price discount coupon code receipt tracking address wrong item missing damaged return exchange size
color product stock available order's confirmation shipped arrived late delay courier warehouse
reset verify verification link expired locked access two-factor device browser android iphone mobile
desktop screen crash crashes freezes slow loading upload download file export import report data
settings profile notification notifications message messages chat widget integration api key token
webhook sync calendar schedule booking appointment trial upgrade downgrade renewal renew annual
monthly charge charges bank transfer paypal credit debit currency tax vat country region language
translation support agent manager supervisor escalate urgent asap immediately frustrated disappointed
happy great perfect resolved fixed works worked broken bug feature request suggestion feedback
documentation guide tutorial video training onboarding migration database backup restore deleted
recover history log logs permission permissions role admin owner member invite invitation team's
workspace organization company business enterprise contract quote sales demo meeting call callback
voicemail hours weekend holiday closed open pending ticket case reference id screenshot attached
attachment pdf image photo warranty repair replacement technician install installation setup
configuration firmware version release outage downtime status incident maintenance security breach
fraud suspicious unauthorized chargeback dispute statement balance credit limit overdraft loan
interest fee fees penalty deadline extension policy terms privacy gdpr consent unsubscribe spam
"""
SUBJECT_PARTS = (
    ("Question about", "Problem with", "Help with", "Issue with", "Urgent:", "Re:", "Follow-up on"),
    (
        "my order",
        "the refund",
        "my invoice",
        "billing",
        "login",
        "password reset",
        "the delivery",
        "my subscription",
        "the app",
        "an upgrade",
        "a damaged item",
        "two-factor",
        "the API",
        "my account",
        "a missing package",
        "the export",
    ),
)
TAGS = ("billing", "refund", "bug", "vip", "shipping", "login", "feature-request", "churn-risk", "sales")
ACTIVITIES = (
    "changed the status to pending",
    "changed the status to resolved",
    "assigned the conversation",
    "changed the priority to high",
    "added the tag billing",
)


def vocabulary_weights() -> tuple[list[str], list[float]]:
    words = list(dict.fromkeys(VOCABULARY.split()))
    return words, [1 / (rank + 1) for rank in range(len(words))]


def sentences(count: int, rng: random.Random) -> list[str]:
    """`count` message bodies of 4 to 60 words drawn with Zipf frequencies."""
    words, weights = vocabulary_weights()
    bodies = []
    for _ in range(count):
        n = min(60, 4 + int(rng.expovariate(1 / 14)))
        text = " ".join(rng.choices(words, weights, k=n))
        bodies.append(text[0].upper() + text[1:] + ".")
    return bodies


def tag_sets(rng: random.Random) -> list[str]:
    """Comma-joined tag sets (SQL splits them): a third of conversations untagged, most with one or two."""
    found = [""] * 20
    for _ in range(40):
        found.append(",".join(sorted(set(rng.choices(TAGS, k=rng.choice((1, 1, 1, 2, 2, 3)))))))
    return found


# --- seeding, as the tables' owner ---------------------------------------------------------------------


@dataclass
class Sizes:
    conversations: int
    messages: int
    contacts: int
    agents: int
    teams: int
    inboxes: int

    def span(self) -> int:
        """Conversation number n gets 1 + (n x 7919) % span messages (and LONG_EXTRA more for one in
        LONG_EVERY): the smallest span for which the total reaches `messages`."""
        long_total = (self.conversations // LONG_EVERY) * LONG_EXTRA
        for span in range(1, 10_000):
            if self.message_total(span) + long_total >= self.messages:
                return span
        raise SystemExit("inbox: too many messages per conversation")

    def message_total(self, span: int) -> int:
        full = self.conversations // span
        total = full * span * (span + 1) // 2
        return total + sum(1 + (n * 7919) % span for n in range(full * span + 1, self.conversations + 1))


@dataclass
class Seeded:
    organization_id: uuid.UUID
    agent_id: uuid.UUID
    inboxes: list[uuid.UUID] = field(default_factory=list)
    teams: list[uuid.UUID] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # rows per table, measured organization
    all_counts: dict[str, int] = field(default_factory=dict)  # rows per table, every organization
    other_orgs: int = 0
    seconds: float = 0.0
    vacuum_seconds: float = 0.0


PREPARE_SQL = """
CREATE TEMP TABLE bench_sentences (i integer PRIMARY KEY, body text NOT NULL);
CREATE TEMP TABLE bench_subjects (i integer PRIMARY KEY, subject text NOT NULL);
"""

TEAMS_SQL = """
INSERT INTO teams (id, organization_id, name)
SELECT gen_random_uuid(), %(org)s, 'Team ' || g FROM generate_series(1, %(teams)s) g
"""
TEAM_MEMBERS_SQL = """
INSERT INTO team_members (organization_id, team_id, user_id)
SELECT %(org)s, t.ids[1 + (a.n - 1) %% cardinality(t.ids)], a.id
FROM unnest(%(agents)s::uuid[]) WITH ORDINALITY AS a(id, n),
     (SELECT array_agg(id ORDER BY id) AS ids FROM teams WHERE organization_id = %(org)s) t
"""
INBOXES_SQL = """
INSERT INTO inboxes (id, organization_id, name, kind, team_id)
SELECT gen_random_uuid(), %(org)s, 'Inbox ' || g, CASE WHEN g %% 3 = 0 THEN 'widget' ELSE 'api' END,
       t.ids[1 + g %% cardinality(t.ids)]
FROM generate_series(1, %(inboxes)s) g,
     (SELECT array_agg(id ORDER BY id) AS ids FROM teams WHERE organization_id = %(org)s) t
"""
CONTACTS_SQL = """
INSERT INTO contacts (id, organization_id, name, email, created_at, updated_at)
SELECT gen_random_uuid(), %(org)s, 'Customer ' || g, 'customer' || g || '@example.com',
       now() - random() * interval '730 days', now()
FROM generate_series(1, %(contacts)s) g
"""
CONVERSATIONS_SQL = """
WITH ctx AS (
    SELECT (SELECT array_agg(id ORDER BY id) FROM contacts WHERE organization_id = %(org)s) AS contacts,
           (SELECT array_agg(id ORDER BY id) FROM inboxes WHERE organization_id = %(org)s) AS inboxes,
           (SELECT array_agg(team_id ORDER BY id) FROM inboxes WHERE organization_id = %(org)s) AS teams,
           %(agents)s::uuid[] AS agents, %(tag_sets)s::text[] AS tag_sets
), r AS (
    SELECT g, random() AS rs, random() AS rp, random() AS ra, random() AS age, random() AS span,
           floor(random() * 1e9)::bigint AS pick
    FROM generate_series(1, %(conversations)s) g
), s AS (
    SELECT r.*,
           CASE WHEN rs < 0.30 THEN 'open' WHEN rs < 0.40 THEN 'pending' WHEN rs < 0.45 THEN 'snoozed'
                ELSE 'resolved' END AS status,
           now() - age * interval '365 days' AS created,
           least(now(), now() - age * interval '365 days' + span * interval '10 days') AS last
    FROM r
)
INSERT INTO conversations (
    id, organization_id, number, inbox_id, contact_id, subject, status, snoozed_until, priority,
    assignee_id, team_id, tags, first_response_at, last_message_at, resolved_at, version,
    last_activity_at, updated_at, created_at
)
SELECT gen_random_uuid(), %(org)s, s.g,
       ctx.inboxes[1 + s.g %% cardinality(ctx.inboxes)],
       ctx.contacts[1 + s.pick %% cardinality(ctx.contacts)],
       subjects.subject,
       s.status,
       CASE WHEN s.status = 'snoozed' THEN now() + (1 + s.pick %% 72) * interval '1 hour' END,
       CASE WHEN rp < 0.50 THEN 'none' WHEN rp < 0.65 THEN 'low' WHEN rp < 0.85 THEN 'normal'
            WHEN rp < 0.95 THEN 'high' ELSE 'urgent' END,
       CASE WHEN ra >= 0.15 THEN ctx.agents[1 + (s.pick / 7) %% cardinality(ctx.agents)] END,
       ctx.teams[1 + s.g %% cardinality(ctx.inboxes)],
       string_to_array(ctx.tag_sets[1 + (s.pick / 13) %% cardinality(ctx.tag_sets)], ','),
       CASE WHEN s.status <> 'open' OR ra >= 0.40
            THEN s.created + (1 + s.pick %% 240) * interval '1 minute' END,
       s.last,
       CASE WHEN s.status = 'resolved' THEN s.last END,
       1 + s.pick %% 9,
       s.last, s.last, s.created
FROM s CROSS JOIN ctx JOIN bench_subjects subjects ON subjects.i = s.pick %% %(subjects)s
"""
MESSAGES_SQL = """
WITH m AS (
    SELECT c.id AS conversation_id, c.created_at AS c0, c.last_activity_at AS c1, c.assignee_id, k, nn.n,
           random() AS rk, floor(random() * 1e9)::bigint AS pick
    FROM conversations c
    CROSS JOIN LATERAL (
        SELECT 1 + (c.number * 7919) %% %(span)s
               + CASE WHEN c.number %% %(long_every)s = 0 THEN %(long_extra)s ELSE 0 END AS n
    ) nn
    CROSS JOIN LATERAL generate_series(1, nn.n) k
    WHERE c.organization_id = %(org)s
), t AS (
    SELECT m.*, CASE WHEN k = 1 THEN 'incoming' WHEN rk < 0.08 THEN 'note' WHEN rk < 0.13 THEN 'activity'
                     WHEN k %% 2 = 0 THEN 'outgoing' ELSE 'incoming' END AS kind
    FROM m
)
INSERT INTO messages (
    id, organization_id, conversation_id, kind, private, body, author_type, author_id, created_at
)
SELECT gen_random_uuid(), %(org)s, t.conversation_id, t.kind, t.kind IN ('note', 'activity'),
       CASE WHEN t.kind = 'activity' THEN (%(activities)s::text[])[1 + t.pick %% %(n_activities)s]
            ELSE bodies.body END,
       CASE WHEN t.kind = 'incoming' THEN 'contact' ELSE 'member' END,
       CASE WHEN t.kind <> 'incoming'
            THEN coalesce(t.assignee_id, (%(agents)s::uuid[])[1 + t.pick %% cardinality(%(agents)s::uuid[])])
       END,
       t.c0 + (t.c1 - t.c0) * ((t.k - 1)::float8 / greatest(t.n - 1, 1))
FROM t JOIN bench_sentences bodies ON bodies.i = t.pick %% %(sentences)s
"""
COUNTER_SQL = """
INSERT INTO conversation_counters (organization_id, last_number) VALUES (%(org)s, %(conversations)s)
ON CONFLICT (organization_id) DO UPDATE SET last_number = excluded.last_number
"""
USERS_SQL = """
INSERT INTO users (id, email, email_normalized, password_hash, full_name)
SELECT id, e, e, '!bench: no password', 'Agent ' || n
FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS a(id, n),
     LATERAL (SELECT 'agent-' || %(tag)s || '-' || n || '@example.com' AS e) x
"""
MEMBERSHIPS_SQL = """
INSERT INTO memberships (organization_id, user_id, role)
SELECT %(org)s, id, %(role)s FROM unnest(%(ids)s::uuid[]) AS a(id)
"""
ORGANIZATION_SQL = "INSERT INTO organizations (id, name, slug) VALUES (%(org)s, %(name)s, %(slug)s)"
COUNT_WHERE = {  # one organization's rows of the tables without organization_id, or where it is the id
    "users": "WHERE id IN (SELECT user_id FROM memberships WHERE organization_id = %(org)s)",
    "organizations": "WHERE id = %(org)s",
}
SEEDED_TABLES = (
    "users",
    "organizations",
    "memberships",
    "teams",
    "team_members",
    "inboxes",
    "contacts",
    "conversations",
    "conversation_counters",
    "messages",
)


class Seeder:
    """One connection as the tables' owner, with the text pools in temporary tables of its own."""

    def __init__(self, conninfo: dict[str, Any], seed: int, sentence_pool: int) -> None:
        import psycopg

        self.conn = psycopg.connect(
            **conninfo,
            connect_timeout=10,
            options=f"-c statement_timeout={SEED_TIMEOUT_MS} -c synchronous_commit=off",
            autocommit=True,
        )
        rng = random.Random(seed)
        self.sentences = sentence_pool
        self.subjects = [f"{a} {b}" for a in SUBJECT_PARTS[0] for b in SUBJECT_PARTS[1]]
        self.tag_sets = tag_sets(rng)
        self.conn.execute(PREPARE_SQL)
        with self.conn.cursor().copy("COPY bench_sentences (i, body) FROM STDIN") as copy:
            for i, body in enumerate(sentences(sentence_pool, rng)):
                copy.write_row((i, body))
        with self.conn.cursor().copy("COPY bench_subjects (i, subject) FROM STDIN") as copy:
            for i, subject in enumerate(self.subjects):
                copy.write_row((i, subject))

    def close(self) -> None:
        self.conn.close()

    def users(self, org: uuid.UUID, count: int, role: str) -> list[uuid.UUID]:
        """`count` users (no usable password), members of `org` with `role`."""
        ids = [uuid.uuid4() for _ in range(count)]
        with self.conn.transaction():
            self.conn.execute(USERS_SQL, {"ids": ids, "tag": secrets.token_hex(4)})
            self.conn.execute(MEMBERSHIPS_SQL, {"org": org, "ids": ids, "role": role})
        return ids

    def organization(self, name: str) -> uuid.UUID:
        org = uuid.uuid4()
        self.conn.execute(ORGANIZATION_SQL, {"org": org, "name": name, "slug": f"bench-{org.hex[:12]}"})
        return org

    def inbox(self, org: uuid.UUID, agents: list[uuid.UUID], sizes: Sizes) -> None:
        """Teams, inboxes, contacts, conversations and messages of one organization, in one transaction."""
        params = {
            "org": org,
            "agents": agents,
            "teams": sizes.teams,
            "inboxes": sizes.inboxes,
            "contacts": sizes.contacts,
            "conversations": sizes.conversations,
            "tag_sets": self.tag_sets,
            "subjects": len(self.subjects),
            "sentences": self.sentences,
            "span": sizes.span(),
            "long_every": LONG_EVERY,
            "long_extra": LONG_EXTRA,
            "activities": list(ACTIVITIES),
            "n_activities": len(ACTIVITIES),
        }
        with self.conn.transaction():
            for statement in (TEAMS_SQL, TEAM_MEMBERS_SQL, INBOXES_SQL, CONTACTS_SQL, CONVERSATIONS_SQL):
                self.conn.execute(statement, params)
            self.conn.execute(MESSAGES_SQL, params)
            self.conn.execute(COUNTER_SQL, params)

    def ids(self, table: str, org: uuid.UUID) -> list[uuid.UUID]:
        from psycopg import sql

        query = sql.SQL("SELECT id FROM {} WHERE organization_id = %s ORDER BY name")
        rows = self.conn.execute(query.format(sql.Identifier(table)), (org,)).fetchall()
        return [row[0] for row in rows]

    def counts(self, org: uuid.UUID | None) -> dict[str, int]:
        from psycopg import sql

        found = {}
        for table in SEEDED_TABLES:
            where = sql.SQL("")
            if org is not None:
                where = sql.SQL(COUNT_WHERE.get(table, "WHERE organization_id = %(org)s"))
            query = sql.SQL("SELECT count(*) FROM {} {}").format(sql.Identifier(table), where)
            row = self.conn.execute(query, {"org": org} if org is not None else None).fetchone()
            found[table] = int(row[0]) if row else 0
        return found


def seed(
    server: Server,
    org: uuid.UUID,
    agent: uuid.UUID,
    sizes: Sizes,
    others: int,
    other: Sizes,
    sentence_pool: int,
) -> Seeded:
    """The measured organization on one connection, the others on a second one at the same time."""
    conninfo = owner_conninfo(server)
    seeded = Seeded(org, agent, other_orgs=others)
    started = time.monotonic()

    def measured() -> None:
        seeder = Seeder(conninfo, 1, sentence_pool)
        try:
            agents = [agent, *seeder.users(org, sizes.agents - 1, "agent")]
            seeder.inbox(org, agents, sizes)
            seeded.inboxes, seeded.teams = seeder.ids("inboxes", org), seeder.ids("teams", org)
        finally:
            seeder.close()

    def the_others() -> None:
        seeder = Seeder(conninfo, 2, sentence_pool)
        try:
            for n in range(others):
                other_org = seeder.organization(f"Bench other {n + 1}")
                agents = seeder.users(other_org, other.agents, "agent")
                seeder.inbox(other_org, agents, other)
        finally:
            seeder.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(measured), pool.submit(the_others)]:
            future.result()
    seeded.seconds = time.monotonic() - started
    step(f"seeded in {seeded.seconds:.0f} s; VACUUM (ANALYZE)")
    started = time.monotonic()
    import psycopg

    with psycopg.connect(**conninfo, connect_timeout=10, autocommit=True) as conn:
        for table in SEEDED_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")
    seeded.vacuum_seconds = time.monotonic() - started
    counter = Seeder.__new__(Seeder)
    with psycopg.connect(**conninfo, connect_timeout=10, autocommit=True) as counter.conn:
        seeded.counts, seeded.all_counts = counter.counts(org), counter.counts(None)
    return seeded


SAMPLE_SQL = "SELECT id FROM conversations WHERE organization_id = %(org)s ORDER BY random() LIMIT %(count)s"
SAMPLE_LONG_SQL = """
SELECT id FROM conversations WHERE organization_id = %(org)s AND number %% %(every)s = 0
ORDER BY random() LIMIT %(count)s
"""


def sample_conversations(server: Server, org: uuid.UUID, count: int, *, long: bool) -> list[uuid.UUID]:
    """`count` conversations of the measured organization at random (`long`: those of 50+ messages)."""
    import psycopg

    query = SAMPLE_LONG_SQL if long else SAMPLE_SQL
    with psycopg.connect(**owner_conninfo(server), connect_timeout=10, autocommit=True) as conn:
        rows = conn.execute(query, {"org": org, "count": count, "every": LONG_EVERY}).fetchall()
    return [row[0] for row in rows]


# --- sign-ups through the API --------------------------------------------------------------------------


@dataclass
class Account:
    user_id: uuid.UUID
    token: str
    organization_id: uuid.UUID


def sign_up(client: httpx.Client, email: str) -> Account:
    body = {"email": email, "password": PASSWORD, "transport": "body", "full_name": "Bench"}
    answer = client.post("/auth/signup", json=body)
    if answer.status_code != 201:
        raise SystemExit(f"inbox: signup failed: {answer.status_code} {answer.text}")
    data = answer.json()
    token = str(data["access_token"])
    orgs = client.get("/orgs", headers={"Authorization": f"Bearer {token}"})
    if orgs.status_code != 200 or not orgs.json()["items"]:
        raise SystemExit(f"inbox: GET /orgs failed: {orgs.status_code} {orgs.text}")
    return Account(uuid.UUID(data["user"]["id"]), token, uuid.UUID(orgs.json()["items"][0]["id"]))


def add_member(server: Server, org: uuid.UUID, user: uuid.UUID, role: str) -> None:
    import psycopg

    with psycopg.connect(**owner_conninfo(server), connect_timeout=10, autocommit=True) as conn:
        conn.execute(MEMBERSHIPS_SQL, {"org": org, "ids": [user], "role": role})


# --- the measured requests -----------------------------------------------------------------------------


@dataclass
class Request:
    """One phase: a request (or one request over many resources), measured by wrk."""

    key: str
    what: str  # the line of the table
    method: str = "GET"
    path: str = ""  # with {org}; empty when `paths` is set
    params: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)  # rotate.lua: one request over each in turn
    bodies: list[str] = field(default_factory=list)
    reference: bool = False  # GET /auth/me: the p99 the reads are read against
    baseline: bool = False  # GET /health/live
    read: bool = True  # a read, held to the p99 target
    operation: tuple[str, str] | None = None  # (method, OpenAPI path) whose parameters must exist

    def url(self, base_url: str, org: uuid.UUID) -> str:
        query = f"?{urlencode(self.params)}" if self.params else ""
        return base_url + self.path.format(org=org) + query


@dataclass
class Measured:
    request: Request
    phase: Phase | None = None
    unavailable: str = ""  # why it was not run


LIST = "/orgs/{org}/conversations"
LIST_OPERATION = ("get", "/orgs/{org_id}/conversations")


def requests(seeded: Seeded, conversations: list[uuid.UUID], long: list[uuid.UUID]) -> list[Request]:
    """The phases, in order. To measure another request, add a line here (e.g. another search)."""
    org = seeded.organization_id
    one = f"{LIST}/{{id}}".replace("{org}", str(org))
    # (key, what, query): "{inbox}", "{team}" stand for the measured organization's first inbox and team.
    lists: list[tuple[str, str, dict[str, str]]] = [
        ("list_mine", "the agent's default list", {"status": "open", "assignee": "me"}),
        ("list_inbox", "an inbox, open", {"inbox_id": "{inbox}", "status": "open"}),
        (
            "list_inbox_priority",
            "an inbox, open, urgent",
            {"inbox_id": "{inbox}", "status": "open", "priority": "urgent"},
        ),
        ("list_team", "a team, open", {"team_id": "{team}", "status": "open"}),
        ("list_tag", "a tag, open", {"tag": "billing", "status": "open"}),
        ("list_unassigned", "unassigned, open", {"status": "open", "assignee": "unassigned"}),
        ("search_refund", "search, one word", {"q": "refund", "sort": "relevance"}),
        ("search_words", "search, three words", {"q": "invoice charged twice", "sort": "relevance"}),
    ]
    ids = {"inbox": str(seeded.inboxes[0]), "team": str(seeded.teams[0])}
    phases = [
        Request("live", "GET /health/live", path="/health/live", baseline=True, read=False),
        Request("me", "GET /auth/me", path="/auth/me", reference=True, read=False),
        *(
            Request(
                key,
                f"GET {LIST}?{unquote(urlencode(params))} ({what})",
                path=LIST,
                params={name: value.format(**ids) for name, value in params.items()},
                operation=LIST_OPERATION,
            )
            for key, what, params in lists
        ),
        Request(
            "conversation",
            f"GET {LIST}/{{id}} ({len(conversations)} conversations in turn)",
            paths=[one.format(id=c) for c in conversations],
        ),
        Request(
            "messages",
            f"GET {LIST}/{{id}}/messages?limit=50 ({len(long)} conversations of 100+ messages in turn)",
            paths=[one.format(id=c) + "/messages?limit=50" for c in long],
        ),
        Request(
            "post",
            f"POST {LIST}/{{id}}/messages ({len(conversations)} conversations in turn, outgoing and notes)",
            method="POST",
            paths=[one.format(id=c) + "/messages" for c in conversations],
            bodies=[
                json.dumps(
                    {"kind": "outgoing", "body": "Thanks for your patience, the refund is on its way."}
                ),
                json.dumps({"kind": "note", "body": "Customer called again about the invoice, escalate."}),
            ],
            read=False,
        ),
    ]
    return phases


def available(
    request: Request, openapi: dict[str, Any], client: httpx.Client, base: str, org: uuid.UUID
) -> str:
    """Why the request cannot be measured yet ('' if it can): a parameter the API does not have (FastAPI
    ignores unknown query parameters, so the OpenAPI document tells), or a 422 or other failure."""
    if request.operation is not None:
        method, path = request.operation
        operation = openapi.get("paths", {}).get(path, {}).get(method, {})
        known = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        missing = sorted(set(request.params) - known)
        if missing:
            return f"not available: no {', '.join(missing)} parameter yet"
    if request.paths:
        return ""
    answer = client.get(request.url(base, org))
    if answer.status_code == 422:
        return f"not available: 422 {answer.text[:200]}"
    if answer.status_code != 200:
        return f"failed: {answer.status_code} {answer.text[:200]}"
    return ""


# --- the floor: a bare INSERT + COMMIT through a pool like the server's ---------------------------------

FLOOR_INSERT = """
INSERT INTO messages (id, organization_id, conversation_id, kind, private, body, author_type, author_id,
                      created_at)
VALUES (:id, :org, :conversation, 'outgoing', false, :body, 'member', :author, :created)
"""


async def floor_run(config: dict[str, Any]) -> dict[str, Any]:
    """`connections` tasks, each inserting the message row and committing, back to back, for the
    warm-up and then `seconds`; the latencies and count of the measured window."""
    from sqlalchemy import text

    from aisupport.core.db import engine_for
    from aisupport.core.tenancy import apply_tenant  # how the server applies its tenant

    settings = server_settings(config["overrides"])
    engine = engine_for(settings, config["url"])
    insert = text(FLOOR_INSERT)
    tenant = {"organization_id": config["org"], "user_id": config["user"]}
    conversations = config["conversations"]
    body = "Thanks for your patience, the refund is on its way."
    latencies: list[float] = []
    window = [math.inf, math.inf]

    async def worker(index: int) -> None:
        turn = index * 7919
        while (now := time.monotonic()) < window[1]:
            turn += 1
            row = {
                "id": uuid.uuid4(),
                "org": config["org"],
                "conversation": conversations[turn % len(conversations)],
                "body": body,
                "author": config["user"],
                "created": datetime.now(UTC),
            }
            async with engine.begin() as conn:
                await conn.run_sync(apply_tenant, tenant)
                await conn.execute(insert, row)
            if now >= window[0]:
                latencies.append(time.monotonic() - now)

    async def clock() -> None:
        start = time.monotonic()
        window[0] = start + config["warmup"]
        window[1] = window[0] + config["seconds"]
        await asyncio.sleep(config["warmup"])
        print("floor-start", flush=True)
        await asyncio.sleep(config["seconds"])

    window[1] = time.monotonic() + config["warmup"] + config["seconds"]
    await asyncio.gather(clock(), *(worker(i) for i in range(config["connections"])))
    print("floor-end", flush=True)
    await engine.dispose()
    latencies.sort()

    def percentile(q: float) -> float:
        return latencies[max(0, math.ceil(q / 100 * len(latencies)) - 1)] if latencies else math.nan

    return {
        "requests": len(latencies),
        "seconds": config["seconds"],
        "latency": {"p50": percentile(50), "p99": percentile(99), "max": percentile(100)},
    }


def floor_main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    try:
        import uvloop

        result = uvloop.run(floor_run(config))
    except ImportError:
        result = asyncio.run(floor_run(config))
    print(FLOOR_MARKER + json.dumps(result), flush=True)
    return 0


@dataclass
class Floor:
    requests: int
    seconds: float
    latency: dict[str, float]
    cpu: CpuShares
    connections: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def app_url(server: Server, overrides: dict[str, str]) -> str:
    """The URL the server connects with: the app role on the embedded PostgreSQL's socket."""
    from aisupport.core.tenancy import app_database_url

    info = owner_conninfo(server)
    owner = f"postgresql+psycopg://{info['user']}@/{info['dbname']}?host={info['host']}&port={info['port']}"
    return str(app_database_url(server_settings(overrides), owner))


def measure_floor(
    server: Server,
    overrides: dict[str, str],
    seeded: Seeded,
    conversations: list[uuid.UUID],
    connections: int,
    seconds: int,
    warmup: int,
) -> Floor:
    config = {
        "url": app_url(server, overrides),
        "overrides": overrides,
        "org": str(seeded.organization_id),
        "user": str(seeded.agent_id),
        "conversations": [str(c) for c in conversations],
        "connections": connections,
        "seconds": seconds,
        "warmup": max(1, warmup),
    }
    config_path = RESULTS / "floor-config.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [sys.executable, __file__, "--floor", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=(RESULTS / "floor.log").open("wb"),
        text=True,
    )
    floor = Processes(process.pid, server.postmaster_pid())
    before = after = None
    result: dict[str, Any] | None = None
    deadline = time.monotonic() + seconds + warmup + 120
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("floor-start"):
                before = floor.reading()
            elif line.startswith("floor-end"):
                after = floor.reading()
            elif line.startswith(FLOOR_MARKER):
                result = json.loads(line.removeprefix(FLOOR_MARKER))
            if time.monotonic() > deadline:
                break
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait()
    if result is None or before is None or after is None:
        log = (RESULTS / "floor.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"inbox: the floor process failed (bench/results/floor.log):\n{log}")
    cpu = Processes.shares(before, after, [])
    return Floor(result["requests"], result["seconds"], result["latency"], cpu, connections)


# --- where the time goes: the repository's own queries under EXPLAIN ANALYZE ---------------------------


class _Captured(Exception):
    """Not an error: how the statement comes back."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement


class _Capture:
    """Stands for the session: hands back the first statement a repository function runs."""

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(statement)

    scalar = scalars = execute


async def _statement(call: Any) -> Any:
    try:
        await call(_Capture())
    except _Captured as captured:
        return captured.statement
    raise RuntimeError("the repository function ran no statement")


def list_filters(params: dict[str, str], agent: uuid.UUID) -> tuple[dict[str, Any], list[str]]:
    """ConversationFilters' arguments for a list's query parameters; the parameters it has no field for."""
    from dataclasses import fields

    from aisupport.conversations.conversation_repository import ConversationFilters

    names = {f.name for f in fields(ConversationFilters)}
    found: dict[str, Any] = {}
    left = []
    for name, value in params.items():
        if name == "assignee":
            found.update(unassigned=True) if value == "unassigned" else found.update(assignee_id=agent)
        elif name in names:
            found[name] = uuid.UUID(value) if name.endswith("_id") else value
        else:
            left.append(name)
    return found, left


async def statement_of(key: str, params: dict[str, str], seeded: Seeded, conversation: uuid.UUID) -> Any:
    """The statement the server's repository runs for this request (its main query)."""
    from aisupport.conversations import conversation_repository as repo

    org = seeded.organization_id
    if key == "conversation":
        return await _statement(lambda db: repo.conversation(db, org, conversation))
    if key == "messages":
        return await _statement(lambda db: repo.messages(db, org, conversation, before=None, limit=51))
    found, left = list_filters(params, seeded.agent_id)
    if left:
        raise LookupError(f"ConversationFilters has no field for {', '.join(left)}")
    filters = repo.ConversationFilters(**found)
    return await _statement(lambda db: repo.conversations(db, org, filters, before=None, limit=51))


@dataclass
class Plan:
    key: str
    planning_ms: float = math.nan
    execution_ms: float = math.nan
    generic_ms: float = math.nan
    text: str = ""
    custom_nodes: str = ""
    generic_nodes: str = ""


def _milliseconds(plan: str, label: str) -> float:
    for line in plan.splitlines():
        if line.strip().startswith(f"{label}:"):
            return float(line.split(":")[1].split()[0])
    return math.nan


def _literal(value: object) -> str:
    """A parameter's value written into SQL (the ids, words and numbers of these queries)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def _explained(conn: Any, sql: str, params: Any) -> tuple[float, float, str]:
    result = await conn.exec_driver_sql(sql, params)
    text = "\n".join(str(row[0]) for row in result)
    return _milliseconds(text, "Planning Time"), _milliseconds(text, "Execution Time"), text


async def explain_all(
    url: str, overrides: dict[str, str], seeded: Seeded, requests: list[Request], conversation: uuid.UUID
) -> list[Plan]:
    """EXPLAIN (ANALYZE, BUFFERS) of each read's query, as the app role with the tenant set (row-level
    security applies, as for the server), five times: the median of the times, the last plan. Twice:
    with its values (a custom plan), and prepared with `plan_cache_mode = force_generic_plan` (the plan
    PostgreSQL may settle on for the server, whose driver prepares a statement after 5 executions on
    a connection, and whose plan cache then goes generic when that looks no dearer)."""
    import re

    from aisupport.core.db import engine_for
    from aisupport.core.tenancy import _APPLY_TENANT

    engine = engine_for(server_settings(overrides), url, pool_size=1)
    tenant = {"organization_id": str(seeded.organization_id), "user_id": str(seeded.agent_id)}
    plans = []
    try:
        for request in requests:
            plan = Plan(request.key)
            plans.append(plan)
            try:
                statement = await statement_of(request.key, request.params, seeded, conversation)
            except (LookupError, RuntimeError, TypeError) as error:
                plan.text = f"not explained: {error}"
                continue
            compiled = statement.compile(dialect=engine.dialect)
            names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", compiled.string)))
            positional = compiled.string
            for number, name in enumerate(names, start=1):
                positional = positional.replace(f"%({name})s", f"${number}")
            arguments = ", ".join(_literal(compiled.params[name]) for name in names)
            custom, generic = [], []
            for _ in range(5):
                async with engine.begin() as conn:
                    await conn.execute(_APPLY_TENANT, tenant)
                    custom.append(
                        await _explained(
                            conn, "EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, compiled.params
                        )
                    )
                    await conn.exec_driver_sql(f"PREPARE bench_plan AS {positional}")
                    await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                    generic.append(
                        await _explained(
                            conn, f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan({arguments})", None
                        )
                    )
                    await conn.exec_driver_sql("DEALLOCATE bench_plan")
            custom.sort(key=lambda times: times[1])
            generic.sort(key=lambda times: times[1])
            plan.planning_ms, plan.execution_ms, text = custom[len(custom) // 2]
            plan.generic_ms, generic_text = generic[len(generic) // 2][1:]
            plan.text = f"{compiled.string}\n\n-- with its values:\n{text}\n\n-- generic:\n{generic_text}"
            plan.custom_nodes, plan.generic_nodes = _nodes(text), _nodes(generic_text)
    finally:
        await engine.dispose()
    return plans


def _nodes(text: str) -> str:
    """A plan's first three nodes, on one line."""
    lines = [line for line in text.splitlines() if "(cost=" in line]
    return " / ".join(line.strip().removeprefix("->").split("  (")[0].strip() for line in lines[:3])


# --- the run -------------------------------------------------------------------------------------------


def measure(
    wrk: Wrk,
    request: Request,
    server: Processes,
    base_url: str,
    org: uuid.UUID,
    token: str,
    connections: int,
    seconds: int,
    warmup: int,
) -> Phase:
    headers = [f"Authorization: Bearer {token}"]
    options: dict[str, Any] = {"connections": connections, "cpus": None, "headers": headers}
    url = request.url(base_url, org)
    if request.paths:
        paths_file = RESULTS / f"inbox-{request.key}-paths.txt"
        paths_file.write_text("\n".join(request.paths) + "\n")
        options["script"] = "rotate"
        options["args"] = [str(paths_file), request.method, *request.bodies]
        url = base_url + request.paths[0]
        if request.bodies:
            options["headers"] = [*headers, "Content-Type: application/json"]
    if warmup:
        wrk.run(f"inbox-{request.key}-warmup", url, seconds=warmup, **options)
    before = server.reading()
    run = wrk.run(f"inbox-{request.key}", url, seconds=seconds, **options)
    cpu = Processes.shares(before, server.reading(), [run])
    cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return Phase(request.what, "ours", cores, cores, connections, run, cpu)


@dataclass
class Outcome:
    seeded: Seeded
    measured: list[Measured]
    floor: Floor | None
    sizes: Sizes
    other: Sizes
    plans: list[Plan] = field(default_factory=list)


@dataclass
class Target:
    key: str
    what: str
    figure: str
    value: float
    goal: str
    passed: bool


def targets(outcome: Outcome) -> list[Target]:
    found: list[Target] = []
    reference = next((m.phase for m in outcome.measured if m.request.reference and m.phase), None)
    if reference is None:
        return found
    me_p99 = reference.run.latency["p99"]
    for m in outcome.measured:
        if m.request.read and m.phase is not None:
            value = ratio(m.phase.run.latency["p99"], me_p99)
            found.append(
                Target(
                    m.request.key,
                    f"{m.request.what}: p99 ÷ GET /auth/me p99",
                    f"{ms(m.phase.run.latency['p99'])} ÷ {ms(me_p99)} ms",
                    value,
                    f"≤ {TARGET_READ_P99:g}",
                    not math.isnan(value) and value <= TARGET_READ_P99,
                )
            )
    post = next((m.phase for m in outcome.measured if m.request.key == "post" and m.phase), None)
    if post is not None and outcome.floor is not None:
        value = ratio(post.rate, outcome.floor.rate)
        found.append(
            Target(
                "post",
                "POST .../messages ÷ bare INSERT + COMMIT, per s",
                f"{post.rate:.0f} ÷ {outcome.floor.rate:.0f}",
                value,
                f"≥ {TARGET_POST_VS_FLOOR:g}",
                not math.isnan(value) and value >= TARGET_POST_VS_FLOOR,
            )
        )
    return found


HEADER = (
    "request",
    "answers",
    "2xx/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "p99 ÷ /auth/me",
    "errors",
    "API CPU",
    "PostgreSQL CPU",
    "server CPU µs per 2xx",
    "÷ /auth/me's",
    "wrk CPU",
    "rest of machine",
)


def rows(outcome: Outcome) -> list[tuple[str, ...]]:
    reference = next((m.phase for m in outcome.measured if m.request.reference and m.phase), None)
    me_p99 = reference.run.latency["p99"] if reference else math.nan
    me_cpu = reference.cpu_per_answer if reference else math.nan
    found: list[tuple[str, ...]] = []
    for m in outcome.measured:
        if m.phase is None:
            found.append((m.request.what, m.unavailable, *[""] * (len(HEADER) - 2)))
            continue
        run, cpu = m.phase.run, m.phase.cpu
        found.append(
            (
                m.request.what,
                str(run.requests),
                f"{m.phase.rate:.1f}",
                ms(run.latency["p50"]),
                ms(run.latency["p99"]),
                ms(run.latency["max"]),
                f"{ratio(run.latency['p99'], me_p99):.2f}" if m.request.read else "",
                format_errors(run.errors),
                percent(cpu.api),
                percent(cpu.postgres),
                f"{m.phase.cpu_per_answer * 1e6:.0f}",
                f"{ratio(m.phase.cpu_per_answer, me_cpu):.1f}",
                percent(run.cpu_share),
                percent(cpu.rest),
            )
        )
    floor = outcome.floor
    if floor is not None:
        found.append(
            (
                "floor: INSERT the message row + COMMIT (its own process, the server's pool)",
                str(floor.requests),
                f"{floor.rate:.1f}",
                ms(floor.latency["p50"]),
                ms(floor.latency["p99"]),
                ms(floor.latency["max"]),
                "",
                "0",
                f"{percent(floor.cpu.api)} (the floor process)",
                percent(floor.cpu.postgres),
                f"{ratio(floor.cpu.api + floor.cpu.postgres, floor.rate) * 1e6:.0f}",
                "",
                "",
                percent(floor.cpu.rest),
            )
        )
    return found


def steadier(outcome: Outcome) -> str:
    """The CPU figures behind the targets: steadier than rates and latencies on a busy machine."""
    phases = {m.request.key: m.phase for m in outcome.measured if m.phase is not None}
    me, post, floor = phases.get("me"), phases.get("post"), outcome.floor
    if me is None:
        return ""
    reads = ", ".join(
        f"{m.request.key} {ratio(m.phase.cpu_per_answer, me.cpu_per_answer):.1f}x"
        for m in outcome.measured
        if m.request.read and m.phase is not None
    )
    text = (
        "With every connection sending back to back, a p99 is mostly the queue ahead of the request, so "
        "the p99 ratios follow the ratios of the server's CPU per answer (API process and PostgreSQL), the "
        f"steadier figure when the machine is busy: GET /auth/me {me.cpu_per_answer * 1e6:.0f} µs, "
        f"and each read {reads}"
    )
    if post is not None and floor is not None:
        floor_cpu = ratio(floor.cpu.api + floor.cpu.postgres, floor.rate)
        text += (
            f"; POST .../messages {post.cpu_per_answer * 1e6:.0f} µs against the floor's "
            f"{floor_cpu * 1e6:.0f} µs (its process and PostgreSQL; floor ÷ POST "
            f"{ratio(floor_cpu, post.cpu_per_answer):.2f})"
        )
    return text + "."


PLAN_HEADER = (
    "request",
    "planning ms",
    "execution ms",
    "generic plan: execution ms",
    "server CPU µs per 2xx",
    "plan",
    "generic plan",
)


def plan_rows(outcome: Outcome) -> list[tuple[str, ...]]:
    phases = {m.request.key: m for m in outcome.measured}
    found: list[tuple[str, ...]] = []
    for plan in outcome.plans:
        m = phases[plan.key]
        cpu = f"{m.phase.cpu_per_answer * 1e6:.0f}" if m.phase else ""
        found.append(
            (
                m.request.what,
                f"{plan.planning_ms:.2f}",
                f"{plan.execution_ms:.2f}",
                f"{plan.generic_ms:.2f}",
                cpu,
                plan.custom_nodes or plan.text.split("\n")[0],
                plan.generic_nodes,
            )
        )
    return found


def plan_details(outcome: Outcome) -> str:
    """The plans of the reads that missed the p99 target."""
    missed = {t.key for t in targets(outcome) if not t.passed}
    parts = []
    for plan in outcome.plans:
        if plan.key in missed and plan.text:
            parts.append(f"<details><summary>{plan.key}</summary>\n\n```\n{plan.text}\n```\n\n</details>\n")
    return "\n".join(parts)


def seed_rows(outcome: Outcome) -> list[tuple[str, str, str]]:
    seeded = outcome.seeded
    return [(table, f"{seeded.counts.get(table, 0):,}", f"{n:,}") for table, n in seeded.all_counts.items()]


@dataclass
class Context:
    command: str
    started: datetime
    seconds: float
    load_average: str
    wrk: str
    connections: int
    duration: int
    warmup: int


def report(outcome: Outcome, context: Context) -> str:
    s, o, seeded = outcome.sizes, outcome.other, outcome.seeded
    target_rows = [
        (t.what, t.figure, f"{t.value:.2f}", t.goal, "PASS" if t.passed else "MISS") for t in targets(outcome)
    ]
    return f"""{INBOX_START}
## Inbox at scale

Generated by `bench/inbox.py`, a run of its own (`bench/run.py` keeps this section as it is when it
rewrites the file): one server, one large organization seeded straight into PostgreSQL, then one request
a phase with wrk. bench/README.md says how.

```sh
{context.command}
```

(`make bench-inbox` runs `uv run --frozen python bench/inbox.py` from the repository root.)

- date: {context.started.strftime("%Y-%m-%d %H:%M UTC")}, whole run {context.seconds:.0f} s; load average \
{context.load_average} at the start (anything else running shares the cores: the "rest of machine" column)
- machine: {machine_line()}
- seed: the measured organization has {s.agents} agents, {s.teams} teams, {s.inboxes} inboxes, \
{s.contacts:,} contacts, {s.conversations:,} conversations (30% open, 10% pending, 5% snoozed, 55% resolved; \
85% assigned; priorities none/low/normal/high/urgent 50/15/20/10/5%; two tags in three) and their messages \
(the first incoming, then incoming and outgoing in turn, 8% notes, 5% activity; bodies of 4 to 60 words \
with Zipf frequencies over a support vocabulary; one conversation in {LONG_EVERY} has {LONG_EXTRA} more \
messages); plus {seeded.other_orgs} other organizations of {o.agents} agents, {o.contacts:,} contacts, \
{o.conversations:,} conversations each. Inserted as the tables' owner with `INSERT ... SELECT` \
in {seeded.seconds:.0f} s (two connections at once), then `VACUUM (ANALYZE)` in {seeded.vacuum_seconds:.0f} s.
- server: one `aisupport serve` process on 127.0.0.1, embedded PostgreSQL in a fresh temporary folder, \
Redis on loopback, every rate limit raised to {HUGE_LIMIT}, LOG_LEVEL=WARNING; nothing pinned (the \
server, its PostgreSQL and wrk share every core)
- load: {context.wrk}, {context.connections} keep-alive connections sending back to back, {context.warmup} s \
of warm-up (not counted), then {context.duration} s per request; the measured agent (signed up through the \
API, an `agent` member of the organization) sends every request with its Bearer token

| table | measured organization | all organizations |
|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in seed_rows(outcome))}

### Targets

| target | figures | ratio | goal | result |
|---|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in target_rows)}

{steadier(outcome)}

### Requests

In order. Latencies are wrk's, over every answer; CPU is a share of one core over the phase (API: the
server process; PostgreSQL: the embedded server and its backends; rest of machine: everything else).
Lists are a page of 50 (the default `limit`). A request whose parameters the API does not have yet is
"not available" (FastAPI ignores an unknown query parameter, so the OpenAPI document is read first).
The floor inserts the same row as `POST .../messages` (an outgoing message, in the same conversations)
and commits, nothing else: through `core.db.engine_for` (psycopg 3, the server's pool size), as the app
role, with the tenant set as the server sets it (`core.tenancy.apply_tenant`, in BEGIN's round trip),
{context.connections} concurrent tasks.

{markdown_table(HEADER, rows(outcome))}

### Where the time goes

Each read's main query, as the server's repository builds it (`conversation_repository`, the first page
of 51 rows), run under `EXPLAIN (ANALYZE, BUFFERS)` five times after the phases, as the app role with the
tenant set (row-level security applies), on a warm cache; the median. Twice: with its values (a custom
plan), and prepared with `plan_cache_mode = force_generic_plan`: the server's driver (psycopg) prepares
a statement after 5 executions on a connection, and PostgreSQL's plan cache then keeps a generic plan
when that looks no dearer, planned for an average organization, not for this large one. Set against
the server's CPU per answer above: what is not the database is Python (routing, the principal, ORM
loading, serialisation, the round trips of BEGIN, the tenant's set_config, the queries and COMMIT).

{markdown_table(PLAN_HEADER, plan_rows(outcome))}
{plan_details(outcome)}
{INBOX_END}"""  # noqa: S608 (a Markdown report that names SQL, not a query)


def summary(outcome: Outcome) -> dict[str, object]:
    return {
        "seed": {
            "seconds": outcome.seeded.seconds,
            "vacuum_seconds": outcome.seeded.vacuum_seconds,
            "measured": outcome.seeded.counts,
            "all": outcome.seeded.all_counts,
        },
        "requests": {
            m.request.key: (
                {"unavailable": m.unavailable}
                if m.phase is None
                else {
                    "what": m.request.what,
                    "answers": m.phase.run.requests,
                    "rate": m.phase.rate,
                    "latency_ms": {k: v * 1000 for k, v in m.phase.run.latency.items()},
                    "errors": m.phase.run.errors,
                    "cpu": vars(m.phase.cpu),
                }
            )
            for m in outcome.measured
        },
        "floor": None
        if outcome.floor is None
        else {
            "rate": outcome.floor.rate,
            "latency_ms": {k: v * 1000 for k, v in outcome.floor.latency.items()},
        },
        "targets": [
            {"what": t.what, "value": t.value, "goal": t.goal, "passed": t.passed} for t in targets(outcome)
        ],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per request (10)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before each (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections, floor tasks (16)")
    parser.add_argument("--conversations", type=int, default=200_000, help="in the measured organization")
    parser.add_argument("--messages", type=int, default=2_000_000, help="at least, measured organization")
    parser.add_argument("--contacts", type=int, default=100_000, help="in the measured organization")
    parser.add_argument("--agents", type=int, default=50, help="in the measured organization (50)")
    parser.add_argument("--other-orgs", type=int, default=50, help="other organizations (50)")
    parser.add_argument("--other-conversations", type=int, default=2_000, help="in each other organization")
    parser.add_argument(
        "--other-messages", type=int, default=20_000, help="at least, each other organization"
    )
    parser.add_argument("--quick", action="store_true", help="3 s phases, 1 s warm-up, a tenth of the seed")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="a loopback Redis (db 13)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a server setting")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="the report ('-': none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 3), min(args.warmup, 1)
        for name in ("conversations", "messages", "contacts", "other_conversations", "other_messages"):
            setattr(args, name, getattr(args, name) // 10)
        args.other_orgs = min(args.other_orgs, 10)
    if not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 30:
        parser.error("--duration must be in [1, 120] and --warmup in [0, 30]")
    if not 1 <= args.connections <= 500:
        parser.error("--connections must be between 1 and 500")
    if not 100 <= args.conversations <= 5_000_000 or not 1 <= args.agents <= 1000:
        parser.error("--conversations must be in [100, 5000000], --agents in [1, 1000]")
    if not 0 <= args.other_orgs <= 1000 or args.other_conversations < 100 or args.contacts < 1:
        parser.error("--other-orgs must be in [0, 1000], --other-conversations at least 100")
    return args


@contextlib.contextmanager
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"inbox-{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        clean_redis(redis_url, prefix)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--floor"]:
        return floor_main(argv[1])
    args = parse_args(argv)
    overrides = server_overrides(args.env, args.redis_url, "inbox")
    RESULTS.mkdir(parents=True, exist_ok=True)
    wrk = Wrk(ensure_wrk(), None)
    sizes = Sizes(args.conversations, args.messages, args.contacts, args.agents, teams=5, inboxes=10)
    other = Sizes(
        args.other_conversations, args.other_messages, max(1, args.other_conversations // 2), 5, 1, 2
    )
    started = datetime.now(UTC)
    clock = time.monotonic()
    load_average = " / ".join(f"{n:.2f}" for n in os.getloadavg()) + " (1 / 5 / 15 min)"
    measured: list[Measured] = []
    floor: Floor | None = None
    plans: list[Plan] = []
    with redis_prefix(args.redis_url) as prefix:
        overrides.setdefault("RATE_LIMIT_KEY_PREFIX", prefix)
        step("starting the server")
        with running_server(overrides, args.redis_url, log_name="inbox-server.log") as server:
            ours = Processes(server.pid, server.postmaster_pid())
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                admin = sign_up(client, f"bench-admin-{secrets.token_hex(4)}@example.com")
                agent = sign_up(client, f"bench-agent-{secrets.token_hex(4)}@example.com")
                org = admin.organization_id
                add_member(server, org, agent.user_id, "agent")
                step(
                    f"seeding {sizes.conversations:,} conversations, {sizes.messages:,}+ messages, and "
                    f"{args.other_orgs} other organizations"
                )
                seeded = seed(server, org, agent.user_id, sizes, args.other_orgs, other, sentence_pool=20_000)
                step(f"seeded: {seeded.all_counts}")
                conversations = sample_conversations(server, org, 2000, long=False)
                long = sample_conversations(server, org, 1000, long=True)
                openapi = client.get("/openapi.json").json()
                client.headers["Authorization"] = f"Bearer {agent.token}"
                for request in requests(seeded, conversations, long):
                    why = available(request, openapi, client, server.base_url, org)
                    measured.append(Measured(request, unavailable=why))
                    if why:
                        step(f"{request.what}: {why}")
                        continue
                    step(request.what)
                    measured[-1].phase = measure(
                        wrk,
                        request,
                        ours,
                        server.base_url,
                        org,
                        agent.token,
                        args.connections,
                        args.duration,
                        args.warmup,
                    )
            step("floor: INSERT + COMMIT through the server's pool, from a process of its own")
            floor = measure_floor(
                server, overrides, seeded, conversations, args.connections, args.duration, args.warmup
            )
            step("EXPLAIN ANALYZE of the reads' queries")
            reads = [m.request for m in measured if m.request.read and m.phase is not None]
            plans = asyncio.run(explain_all(app_url(server, overrides), overrides, seeded, reads, long[0]))
        step("server stopped")

    outcome = Outcome(seeded, measured, floor, sizes, other, plans)
    (RESULTS / "inbox-explain.txt").write_text(
        "\n\n".join(f"== {plan.key}\n{plan.text}" for plan in plans) + "\n"
    )
    command = (
        "python bench/inbox.py" + "".join(" " + shlex.quote(arg) for arg in argv)
        if argv
        else ("make bench-inbox  # uv run --frozen python bench/inbox.py")
    )
    context = Context(
        command,
        started,
        time.monotonic() - clock,
        load_average,
        wrk_version(wrk.binary),
        args.connections,
        args.duration,
        args.warmup,
    )
    text = report(outcome, context)
    print()
    print(text_table(HEADER, rows(outcome)))
    print()
    for target in targets(outcome):
        verdict = "PASS" if target.passed else "MISS"
        print(f"{verdict}  {target.what}: {target.value:.2f} ({target.goal}; {target.figure})")
    (RESULTS / "inbox.json").write_text(json.dumps(summary(outcome), indent=2, default=str) + "\n")
    write_section(args.output, text, INBOX_START, INBOX_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
