"""Tenant isolation at every layer: routes (walked, not listed), repositories, and PostgreSQL's
row-level security binding the service's own role."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from asgi_lifespan import LifespanManager
from fastapi.routing import APIRoute
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from aisupport.access.permissions import render_matrix
from aisupport.access.routes import declared_access
from aisupport.core.config import PROJECT_ROOT, Settings
from aisupport.core.db import tenant_column, tenant_models
from aisupport.core.tenancy import tenant_session
from aisupport.main import ROUTERS, create_app
from aisupport.models import Base
from tests.conftest import Mailbox, run_jobs
from tests.conversations.helpers import configure
from tests.knowledge.helpers import article, cited, phrased
from tests.organizations.helpers import Person, add_member, ensure_verified, new_owner
from tests.widget.helpers import rated_conversation

# Every tenant-owned table and the column naming its organization, from the models (core/db.py
# TenantOwned, `organizations` by its id): a new tenant table is checked here with no list to update.
TENANT_TABLES = {str(model.__tablename__): tenant_column(model) for model in tenant_models(Base)}
# Valid bodies, so a request reaches the lookup that must not find another tenant's row (routes are
# walked; a new route with a body needs its example here, or the walk fails with a 422).
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("PATCH", "/orgs/{org_id}"): {"name": "x"},
    ("POST", "/orgs/{org_id}/webhooks"): {"url": "https://1.1.1.1/hook"},
    ("PATCH", "/orgs/{org_id}/webhooks/{endpoint_id}"): {"description": "x"},
    ("DELETE", "/orgs/{org_id}"): {"confirm": "x"},
    ("PATCH", "/orgs/{org_id}/members/{user_id}"): {"role": "viewer"},
    ("POST", "/orgs/{org_id}/invitations"): {"email": "x@example.com", "role": "viewer"},
    ("POST", "/orgs/{org_id}/api-keys"): {"name": "x"},
    ("POST", "/orgs/{org_id}/sla-policies"): {"name": "x"},
    ("PATCH", "/orgs/{org_id}/sla-policies/{policy_id}"): {"name": "x"},
    ("POST", "/orgs/{org_id}/teams"): {"name": "x"},
    ("PATCH", "/orgs/{org_id}/teams/{team_id}"): {"name": "x"},
    ("POST", "/orgs/{org_id}/teams/{team_id}/members"): {"user_id": str(uuid.uuid4())},
    ("PUT", "/orgs/{org_id}/members/me/availability"): {"status": "online"},
    ("POST", "/orgs/{org_id}/inboxes"): {"name": "x"},
    ("PATCH", "/orgs/{org_id}/inboxes/{inbox_id}"): {"name": "x"},
    ("PATCH", "/orgs/{org_id}/contacts/{contact_id}"): {"name": "x"},
    ("POST", "/orgs/{org_id}/contacts/{contact_id}/merge"): {"merged_contact_id": str(uuid.uuid4())},
    ("PATCH", "/orgs/{org_id}/conversations/{conversation_id}"): {"priority": "low"},
    ("POST", "/orgs/{org_id}/conversations/{conversation_id}/messages"): {"kind": "note", "body": "x"},
    ("PATCH", "/orgs/{org_id}/tags/{tag_id}"): {"description": "x"},
    ("PATCH", "/orgs/{org_id}/knowledge/sources/{source_id}"): {"title": "x"},
    ("POST", "/orgs/{org_id}/knowledge/sources/{source_id}/phrasings"): {"questions": ["x"]},
    ("POST", "/orgs/{org_id}/knowledge/sources/{source_id}/citations"): {
        "conversation_id": str(uuid.uuid4())
    },
    ("PUT", "/orgs/{org_id}/knowledge/embedder"): {"base_url": "https://1.1.1.1/v1", "model": "x"},
    ("POST", "/orgs/{org_id}/knowledge/web"): {"url": "https://1.1.1.1/x"},
    ("PUT", "/orgs/{org_id}/ai/settings"): {},
    ("POST", "/orgs/{org_id}/conversations/{conversation_id}/ai/drafts/{draft_id}/send"): {},
    ("PUT", "/orgs/{org_id}/conversations/{conversation_id}/ai"): {"silenced": False},
    ("POST", "/orgs/{org_id}/ai/examples"): {"examples": [{"category": "x", "text": "x"}]},
    ("POST", "/orgs/{org_id}/ai/evaluations"): {
        "kind": "triage",
        "train": [{"text": t, "label": t} for t in ("a", "a", "b", "b")],
        "test": [{"text": "a", "label": "a"}],
    },
}


def _routes(client: AsyncClient) -> list[APIRoute]:
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def _declared(route: APIRoute) -> set[object]:
    def walk(dependant: object) -> Iterator[object]:
        for sub in dependant.dependencies:  # type: ignore[attr-defined]
            yield declared_access(sub.call)
            yield from walk(sub)

    declared = {declared_access(route.endpoint), *walk(route.dependant)}
    return {access for access in declared if access is not None}


async def test_every_route_declares_a_permission_or_is_marked_public(client: AsyncClient) -> None:
    routes = _routes(client)
    served = (await client.get("/openapi.json")).json()["paths"]
    assert {route.path for route in routes} == set(served)  # no route escapes the walk
    undeclared = [f"{sorted(route.methods)} {route.path}" for route in routes if not _declared(route)]
    assert undeclared == []
    # Routes inside an organization are never public.
    assert all("public" not in _declared(route) for route in routes if "{org_id}" in route.path)


def test_the_documented_permission_matrix_is_the_one_in_code() -> None:
    assert render_matrix() in (PROJECT_ROOT / "docs" / "permissions.md").read_text()


async def _tenant_b(client: AsyncClient, mailbox: Mailbox) -> tuple[Person, dict[str, str]]:
    """Organization B with one of everything; returns its owner and the ids to aim at."""
    owner = await new_owner(client)
    member = await add_member(client, mailbox, owner, "agent")
    invitation = await client.post(
        f"/orgs/{owner.organization_id}/invitations",
        json={"email": f"b-{uuid.uuid4().hex[:8]}@example.com", "role": "viewer"},
        headers=owner.headers,
    )
    key = await client.post(
        f"/orgs/{owner.organization_id}/api-keys", json={"name": "b"}, headers=owner.headers
    )
    contact = await client.post(
        f"/orgs/{owner.organization_id}/contacts", json={"name": "b"}, headers=owner.headers
    )
    await run_jobs(client)
    sessions = await client.get("/auth/sessions", headers=member.headers)
    conversations = await configure(client, owner, member)
    conversation = await client.post(
        f"/orgs/{owner.organization_id}/conversations",
        json={
            "inbox_id": conversations["inbox_id"],
            "contact_id": contact.json()["id"],
            "message": {"body": "hello"},
            "tags": ["b"],
        },
        headers={**owner.headers, "Idempotency-Key": "b"},
    )
    tags = await client.get(f"/orgs/{owner.organization_id}/tags", headers=owner.headers)
    assert conversation.status_code == 201, conversation.text
    _, rated_id = await rated_conversation(client, owner)
    attachment = await _upload(client, owner, rated_id)
    endpoint_id, delivery_id = await _webhook(client, owner)
    source = await article(client, owner)
    await phrased(client, owner, source["id"], "how do I change my password?")
    await cited(client, owner, source["id"], rated_id)
    ai = await ai_rows(client, owner, rated_id)
    return owner, {
        **ai,
        **conversations,
        "org_id": owner.organization_id,
        "user_id": member.user_id,
        "invitation_id": invitation.json()["id"],
        "key_id": key.json()["id"],
        "session_id": sessions.json()["items"][0]["id"],
        "contact_id": contact.json()["id"],
        "conversation_id": rated_id,  # rated by its customer: every conversation route finds something
        "tag_id": tags.json()["items"][0]["id"],
        "attachment_id": attachment["id"],
        "endpoint_id": endpoint_id,
        "delivery_id": delivery_id,
        "source_id": source["id"],
    }


async def ai_rows(client: AsyncClient, person: Person, conversation_id: str) -> dict[str, str]:
    """A draft, a triage example and an evaluation of the organization: their ids."""
    org = f"/orgs/{person.organization_id}"
    draft = await client.post(f"{org}/conversations/{conversation_id}/ai/drafts", headers=person.headers)
    assert draft.status_code == 201, draft.text
    examples = {"examples": [{"category": "billing", "text": "my invoice"}]}
    assert (await client.post(f"{org}/ai/examples", json=examples, headers=person.headers)).status_code == 201
    example = (await client.get(f"{org}/ai/examples", headers=person.headers)).json()["items"][0]
    evaluation = await client.post(
        f"{org}/ai/evaluations",
        json=BODIES[("POST", "/orgs/{org_id}/ai/evaluations")],
        headers=person.headers,
    )
    assert evaluation.status_code == 202, evaluation.text
    return {
        "draft_id": draft.json()["id"],
        "example_id": example["id"],
        "evaluation_id": evaluation.json()["id"],
    }


# Rows only the AI's jobs write (a decision, a budget's month, a classifier...), made here for A and B.
AI_ROWS = (
    "INSERT INTO ai_settings (organization_id, provider, max_tokens, thresholds, version)"
    " VALUES (%(org)s, 'offline', 100, '{}', 1) ON CONFLICT DO NOTHING",
    "INSERT INTO ai_conversations (organization_id, conversation_id) VALUES (%(org)s, %(conversation)s)"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO ai_decisions (id, organization_id, conversation_id, message_id, answered)"
    " VALUES (gen_random_uuid(), %(org)s, %(conversation)s, gen_random_uuid(), true)",
    "INSERT INTO ai_usage (id, organization_id, feature, model, tokens_in, tokens_out, cost, latency_ms,"
    " succeeded) VALUES (gen_random_uuid(), %(org)s, 'draft', 'x', 1, 1, 0, 1, true)",
    "INSERT INTO ai_budget_months (organization_id, month) VALUES (%(org)s, '2026-01-01')"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO ai_classifiers (organization_id, data, categories, examples, fingerprint, trained_at)"
    " VALUES (%(org)s, 'x', '{}', 0, 'x', now()) ON CONFLICT DO NOTHING",
    "INSERT INTO ai_examples (id, organization_id, category, text, origin)"
    " VALUES (gen_random_uuid(), %(org)s, 'x', 'x', 'example') ON CONFLICT DO NOTHING",
    "INSERT INTO ai_evaluations (id, organization_id, kind, status, parameters)"
    " VALUES (gen_random_uuid(), %(org)s, 'triage', 'done', '{}')",
    "INSERT INTO ai_drafts (id, organization_id, conversation_id, body, citations, invalid_citations,"
    " retrieved, confidence, method, model, tokens_in, tokens_out, cost, latency_ms, status) VALUES"
    " (gen_random_uuid(), %(org)s, %(conversation)s, 'x', '[]', 0, '[]', 0, 'extractive', 'x', 0, 0, 0,"
    " 0, 'ready')",
)


async def _webhook(client: AsyncClient, person: Person) -> tuple[str, str]:
    """A disabled webhook endpoint (nothing is ever sent) and a test delivery to it: their ids."""
    url = f"/orgs/{person.organization_id}/webhooks"
    endpoint = await client.post(
        url, json={"url": "https://1.1.1.1/hook", "enabled": False}, headers=person.headers
    )
    assert endpoint.status_code == 201, endpoint.text
    ping = await client.post(f"{url}/{endpoint.json()['id']}/test", headers=person.headers)
    assert ping.status_code == 202, ping.text
    return endpoint.json()["id"], ping.json()["id"]


async def _upload(client: AsyncClient, person: Person, conversation_id: str) -> dict[str, str]:
    """An upload to the conversation (a row of message_attachments), not attached to a message."""
    answer = await client.post(
        f"/orgs/{person.organization_id}/conversations/{conversation_id}/attachments",
        files={"file": ("a.txt", b"a file", "text/plain")},
        headers=person.headers,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, str] = answer.json()
    return body


async def test_a_member_of_a_gets_404_for_every_id_of_b_on_every_route(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    a = await new_owner(client)  # owner: every permission in A
    _, b = await _tenant_b(client, mailbox)
    tried = 0
    for route in _routes(client):
        names = re.findall(r"{(\w+)}", route.path)
        # Members' routes only: visitors' (tests/widget walks them) and public ones take no member's token.
        if not names or _declared(route) & {"public", "widget_visitor"}:
            continue
        variants = [dict(b)]
        if "org_id" in names and len(names) > 1:
            variants.append({**b, "org_id": a.organization_id})  # A's organization, B's inner ids
        for values in variants:
            path = route.path.format(**{name: values[name] for name in names})
            for method in route.methods:
                body = BODIES.get((method, route.path))
                response = await client.request(method, path, json=body, headers=a.headers)
                assert response.status_code == 404, (method, path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                tried += 1
    assert tried >= 15


async def _rows(client: AsyncClient, organization_id: str | None, user_id: str | None) -> dict[str, set[str]]:
    """The organizations an unscoped SELECT on each tenant table finds through the service's session."""
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with (
        tenant_session(sessions, organization_id=uuid.UUID(organization_id), user_id=uuid.UUID(user_id))
        if organization_id and user_id
        else sessions() as db
    ):
        return {
            table: {str(row[0]) for row in await db.execute(text(f"SELECT {column} FROM {table}"))}  # noqa: S608
            for table, column in TENANT_TABLES.items()
        }


async def test_an_unscoped_select_sees_only_the_current_tenant(
    client: AsyncClient, mailbox: Mailbox, database_url: str
) -> None:
    # A and B each get rows in every tenant table (a new table needs its row made here, for A and B).
    a = await new_owner(client)
    await client.post(f"/orgs/{a.organization_id}/api-keys", json={"name": "a"}, headers=a.headers)
    contact = await client.post(f"/orgs/{a.organization_id}/contacts", json={"name": "a"}, headers=a.headers)
    await ensure_verified(client, mailbox, a)
    invitation = {"email": f"a-{uuid.uuid4().hex[:8]}@example.com", "role": "agent"}
    await client.post(f"/orgs/{a.organization_id}/invitations", json=invitation, headers=a.headers)
    inbox_id = (await configure(client, a))["inbox_id"]
    conversation = {
        "inbox_id": inbox_id,
        "contact_id": contact.json()["id"],
        "message": {"body": "hi"},
        "tags": ["a"],
    }
    keyed = {**a.headers, "Idempotency-Key": "a"}
    opened = await client.post(f"/orgs/{a.organization_id}/conversations", json=conversation, headers=keyed)
    await _upload(client, a, opened.json()["id"])
    _, a_delivery = await _webhook(client, a)
    await rated_conversation(client, a)
    a_source = await article(client, a)
    await phrased(client, a, a_source["id"], "forgot my password")
    await cited(client, a, a_source["id"], opened.json()["id"])
    owner_b, b_ids = await _tenant_b(client, mailbox)
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(owner_url) as conn:  # the owner, not bound by row-level security
        # Rows only a delivery's job writes (an attempt, the dispatcher's place), made here for A and B.
        for organization_id, delivery_id in (
            (a.organization_id, a_delivery),
            (owner_b.organization_id, b_ids["delivery_id"]),
        ):
            conn.execute(
                "INSERT INTO webhook_attempts (id, organization_id, delivery_id, attempted_at, latency_ms)"
                " VALUES (gen_random_uuid(), %s, %s, now(), 1)",
                (organization_id, delivery_id),
            )
            conn.execute(
                "INSERT INTO webhook_cursors (organization_id) VALUES (%s) ON CONFLICT DO NOTHING",
                (organization_id,),
            )
            # An embedding model's vectors (its provider is tested in tests/knowledge/test_embeddings.py).
            embedder = conn.execute(
                "INSERT INTO knowledge_embedders (id, organization_id, base_url, model, request_dimensions,"
                " query_prefix, document_prefix, input_type, state) VALUES (gen_random_uuid(), %s,"
                " 'https://1.1.1.1/v1', 'x', false, '', '', false, 'retired') RETURNING id",
                (organization_id,),
            ).fetchone()
            conn.execute(
                "INSERT INTO knowledge_embeddings (organization_id, embedder_id, key, dimensions, embedding)"
                " VALUES (%s, %s, 'k', 3, '[1,0,0]')",
                (organization_id, embedder[0] if embedder else None),
            )
        for organization_id, conversation_id in (
            (a.organization_id, opened.json()["id"]),
            (owner_b.organization_id, b_ids["conversation_id"]),
        ):
            for statement in AI_ROWS:
                conn.execute(statement, {"org": organization_id, "conversation": conversation_id})
        for table, column in TENANT_TABLES.items():
            held = {str(row[0]) for row in conn.execute(f"SELECT DISTINCT {column} FROM {table}")}  # noqa: S608
            assert {a.organization_id, owner_b.organization_id} <= held, f"make rows of {table} for A and B"
    scoped = await _rows(client, a.organization_id, a.user_id)
    assert scoped == {table: {a.organization_id} for table in TENANT_TABLES}
    nobody = await _rows(client, None, None)
    assert nobody == {table: set() for table in TENANT_TABLES}


async def test_writes_stay_in_the_current_organization_even_where_reads_are_wider(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    # A user who belongs to A and B, scoped to A: B is visible (to list and switch) but not writable.
    owner_b = await new_owner(client)
    member = await add_member(client, mailbox, owner_b, "viewer")
    other = await client.post("/orgs", json={"name": "A"}, headers=member.headers)
    a = other.json()["id"]
    b = owner_b.organization_id
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with tenant_session(
        sessions, organization_id=uuid.UUID(a), user_id=uuid.UUID(member.user_id)
    ) as db:
        visible = {str(row[0]) for row in await db.execute(text("SELECT id FROM organizations"))}
        assert visible == {a, b}
        deletes = [
            (await db.execute(text(statement), {"b": b, "u": member.user_id})).rowcount  # type: ignore[attr-defined]
            for statement in (
                "DELETE FROM organizations WHERE id = :b",
                "DELETE FROM memberships WHERE organization_id = :b AND user_id = :u",
                "UPDATE memberships SET role = 'owner' WHERE organization_id = :b AND user_id = :u",
            )
        ]
    assert deletes == [0, 0, 0]
    assert (await client.get(f"/orgs/{b}/members", headers=owner_b.headers)).status_code == 200


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("SET LOCAL row_security = off; SELECT count(*) FROM api_keys", "row-level security"),
        ("ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY", "must be owner"),
        ("UPDATE audit_events SET action = 'forged'", "permission denied"),
        ("DELETE FROM audit_events", "permission denied"),
        ("SELECT * FROM alembic_version", "permission denied"),
        (
            "INSERT INTO invitations (id, organization_id, email, email_normalized, role, expires_at)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), 'x@x.io', 'x@x.io', 'viewer', now())",
            "row-level security",
        ),
    ],
)
async def test_the_service_role_cannot_get_around_row_level_security(
    client: AsyncClient, statement: str, refusal: str
) -> None:
    owner = await new_owner(client)
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with tenant_session(sessions, organization_id=uuid.UUID(owner.organization_id)) as db:
        *setup, attempt = statement.split("; ")
        for part in setup:
            await db.execute(text(part))
        with pytest.raises(DBAPIError, match=refusal):
            await db.execute(text(attempt))


async def test_the_service_cannot_become_a_privileged_role(client: AsyncClient, database_url: str) -> None:
    superuser = make_url(database_url).username
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        role = (
            await db.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))
        ).one()
        assert tuple(role) == (False, False)
        with pytest.raises(DBAPIError, match="permission denied"):
            await db.execute(text(f'SET ROLE "{superuser}"'))


async def test_keys_cannot_point_across_tenants(
    client: AsyncClient, mailbox: Mailbox, database_url: str
) -> None:
    a = await new_owner(client)
    _, b = await _tenant_b(client, mailbox)
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(owner_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO audit_events (organization_id, action, actor_api_key_id) VALUES (%s, 'forged', %s)",
            (a.organization_id, b["key_id"]),
        )


async def test_the_service_refuses_to_start_as_a_privileged_role(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    app = create_app(make_settings(APP_DATABASE_URL=database_url))
    with pytest.raises(RuntimeError, match="tenant isolation would not hold"):
        async with LifespanManager(app):
            pass
