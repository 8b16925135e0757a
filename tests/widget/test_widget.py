"""The customer widget API (issue 12, point 4): visitor sessions, anonymous or proven, what a visitor
sees (their own conversations, never notes or activity), ratings, attachments, limits, CORS, and the
two token kinds refusing each other's routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from fastapi.routing import APIRoute
from httpx import AsyncClient

from aisupport.access.routes import declared_access
from aisupport.core.config import Settings
from aisupport.main import ROUTERS
from tests.conftest import serve
from tests.contacts.helpers import create_contact, unique_email
from tests.conversations.helpers import created, patch
from tests.organizations.helpers import Person, new_owner
from tests.realtime.helpers import live_server, opened
from tests.widget.helpers import Visitor, open_conversation, start, widget_inbox


def _hash(secret: str, external_id: str) -> str:
    return hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()


def _identity_token(secret: str, lifetime: int = 300, **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + lifetime, **claims}, secret, algorithm="HS256")


async def _member_reply(
    client: AsyncClient, owner: Person, conversation_id: str, kind: str, body: str
) -> None:
    await created(client, owner, f"conversations/{conversation_id}/messages", {"kind": kind, "body": body})


async def _contacts(client: AsyncClient, owner: Person) -> list[dict[str, Any]]:
    response = await client.get(f"/orgs/{owner.organization_id}/contacts", headers=owner.headers)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_anonymous_visitor_talks_and_never_sees_notes_or_activity(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    assert not visitor.verified
    conversation = await open_conversation(client, visitor, "My order is late")
    assert set(conversation) == {
        "id", "number", "subject", "status", "created_at", "last_message_at", "resolved_at"
    }  # fmt: skip
    await _member_reply(client, owner, conversation["id"], "note", "internal: check the warehouse")
    await patch(client, owner, conversation["id"], priority="high")  # an activity line
    await _member_reply(client, owner, conversation["id"], "outgoing", "It ships today")
    page = await client.get(
        visitor.url("conversations", conversation["id"], "messages"), headers=visitor.headers
    )
    assert page.status_code == 200, page.text
    assert [(m["kind"], m["body"]) for m in page.json()["items"]] == [
        ("outgoing", "It ships today"),
        ("incoming", "My order is late"),
    ]
    assert "warehouse" not in page.text
    assert "priority" not in page.text
    posted = await client.post(
        visitor.url("conversations", conversation["id"], "messages"),
        json={"body": "Thanks"},
        headers=visitor.headers,
    )
    assert posted.status_code == 201, posted.text
    # The team sees it as the customer's, written by this visitor.
    members_view = await client.get(
        f"/orgs/{owner.organization_id}/conversations/{conversation['id']}/messages", headers=owner.headers
    )
    newest = members_view.json()["items"][0]
    assert (newest["kind"], newest["author_type"], newest["author_id"]) == (
        "incoming",
        "widget_visitor",
        visitor.id,
    )
    listed = await client.get(visitor.url("conversations"), headers=visitor.headers)
    assert [item["id"] for item in listed.json()["items"]] == [conversation["id"]]


async def test_visitors_see_only_their_own_conversations(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    alice, bob = await start(client, inbox["id"]), await start(client, inbox["id"])
    assert alice.contact_id != bob.contact_id  # each anonymous visitor is a contact of their own
    theirs = await open_conversation(client, alice)
    for path in (theirs["id"], f"{theirs['id']}/messages"):
        response = await client.get(bob.url("conversations", path), headers=bob.headers)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
    refused = await client.post(
        bob.url("conversations", theirs["id"], "messages"), json={"body": "hi"}, headers=bob.headers
    )
    assert refused.status_code == 404
    assert (await client.get(bob.url("conversations"), headers=bob.headers)).json()["items"] == []
    # A conversation the team opens with Alice's contact is not one Alice's anonymous session started.
    by_team = await created(
        client, owner, "conversations", {"inbox_id": inbox["id"], "contact_id": alice.contact_id}
    )
    seen = await client.get(alice.url("conversations"), headers=alice.headers)
    assert [item["id"] for item in seen.json()["items"]] == [theirs["id"]]
    assert by_team["id"] != theirs["id"]
    # A visitor token names its inbox: another inbox's path refuses it.
    other = await widget_inbox(client, owner)
    wrong = await client.get(f"/widget/v1/inboxes/{other['id']}/conversations", headers=alice.headers)
    assert wrong.status_code == 401


async def test_a_verified_visitor_sees_their_history_from_any_device(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    secret = inbox["identity_secret"]
    known = await create_contact(client, owner, name="Ada", email=unique_email(), external_id="cust-42")
    earlier = await created(
        client, owner, "conversations", {"inbox_id": inbox["id"], "contact_id": known["id"]}
    )
    laptop = await start(client, inbox["id"], external_id="cust-42", identity_hash=_hash(secret, "cust-42"))
    phone = await start(client, inbox["id"], identity_token=_identity_token(secret, external_id="cust-42"))
    assert laptop.verified
    assert phone.verified
    assert laptop.contact_id == phone.contact_id == known["id"]
    assert laptop.id == phone.id  # one verified visitor per contact and inbox
    started = await open_conversation(client, laptop)
    listed = await client.get(phone.url("conversations"), headers=phone.headers)
    assert {item["id"] for item in listed.json()["items"]} == {earlier["id"], started["id"]}
    # A new identity makes a new contact, with the signed name and email.
    email = unique_email()
    newcomer = await start(
        client, inbox["id"], identity_token=_identity_token(secret, sub="cust-43", email=email, name="Bo")
    )
    contact = await client.get(
        f"/orgs/{owner.organization_id}/contacts/{newcomer.contact_id}", headers=owner.headers
    )
    assert (contact.json()["external_id"], contact.json()["email"], contact.json()["name"]) == (
        "cust-43",
        email,
        "Bo",
    )


async def test_an_identity_claimed_without_a_valid_proof_is_refused_and_merges_nothing(
    client: AsyncClient,
) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    secret = inbox["identity_secret"]
    victim = await create_contact(client, owner, name="Victim", email=unique_email(), external_id="cust-1")
    await created(client, owner, "conversations", {"inbox_id": inbox["id"], "contact_id": victim["id"]})
    before = len(await _contacts(client, owner))
    forged = [
        {
            "external_id": "cust-1",
            "identity_hash": _hash("ivs_guessed_by_an_attacker_who_lacks_the_secret", "cust-1"),
        },  # another key
        {"external_id": "cust-1", "identity_hash": _hash(secret, "cust-2")},  # another id's hash
        {"external_id": "cust-1"},  # no proof
        {"email": victim["email"]},  # an email alone proves nothing
        {"name": "Victim"},
        {
            "identity_token": _identity_token(
                "ivs_guessed_by_an_attacker_who_lacks_the_secret", external_id="cust-1"
            )
        },
        {"identity_token": _identity_token(secret, lifetime=-120, external_id="cust-1")},  # expired
        {"identity_token": _identity_token(secret, lifetime=7 * 24 * 3600, external_id="cust-1")},  # too long
        {"identity_token": _identity_token(secret, email=victim["email"])},  # no external_id
        {"identity_token": jwt.encode({"external_id": "cust-1"}, None, algorithm="none")},
    ]
    for claim in forged:
        response = await client.post(f"/widget/v1/inboxes/{inbox['id']}/session", json=claim)
        assert response.status_code == 403, (claim, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "identity_not_proven"
    assert len(await _contacts(client, owner)) == before  # no contact made, none matched or merged
    # An inbox without an identity secret (an API inbox is not a widget at all) proves nothing either.
    api_inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    response = await client.post(f"/widget/v1/inboxes/{api_inbox['id']}/session", json={})
    assert response.status_code == 404
    assert response.json()["code"] == "inbox_not_found"


async def test_rotating_the_identity_secret_ends_verified_visitors_only(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    verified = await start(
        client, inbox["id"], external_id="c-1", identity_hash=_hash(inbox["identity_secret"], "c-1")
    )
    anonymous = await start(client, inbox["id"])
    await asyncio.sleep(1.1)  # token times are whole seconds: the rotation comes after the tokens
    rotated = await client.post(
        f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}/rotate-secret", headers=owner.headers
    )
    assert rotated.status_code == 200, rotated.text
    assert (await client.get(verified.url("conversations"), headers=verified.headers)).status_code == 401
    assert (await client.get(anonymous.url("conversations"), headers=anonymous.headers)).status_code == 200
    old_proof = {"external_id": "c-1", "identity_hash": _hash(inbox["identity_secret"], "c-1")}
    refused = await client.post(f"/widget/v1/inboxes/{inbox['id']}/session", json=old_proof)
    assert refused.status_code == 403
    new_secret = rotated.json()["identity_secret"]
    again = await start(client, inbox["id"], external_id="c-1", identity_hash=_hash(new_secret, "c-1"))
    assert again.contact_id == verified.contact_id


async def test_erasing_the_contact_ends_its_visitors_and_a_refresh_renews(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    refreshed = await client.post(visitor.url("session", "refresh"), headers=visitor.headers)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["visitor_id"] == visitor.id
    renewed = Visitor(
        visitor.inbox_id, refreshed.json()["visitor_token"], visitor.id, visitor.contact_id, False
    )
    await open_conversation(client, renewed)
    erased = await client.post(
        f"/orgs/{owner.organization_id}/contacts/{visitor.contact_id}/erase", headers=owner.headers
    )
    assert erased.status_code == 204, erased.text
    for token in (visitor, renewed):
        response = await client.get(token.url("conversations"), headers=token.headers)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_visitor_token"


async def test_merging_an_anonymous_contact_keeps_the_visitor_to_what_it_started(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    mine = await open_conversation(client, visitor)
    known = await create_contact(client, owner, name="Known", email=unique_email())
    private = await created(
        client, owner, "conversations", {"inbox_id": inbox["id"], "contact_id": known["id"]}
    )
    merged = await client.post(
        f"/orgs/{owner.organization_id}/contacts/{known['id']}/merge",
        json={"merged_contact_id": visitor.contact_id},
        headers=owner.headers,
    )
    assert merged.status_code == 200, merged.text
    listed = await client.get(visitor.url("conversations"), headers=visitor.headers)
    assert [item["id"] for item in listed.json()["items"]] == [mine["id"]]
    hidden = await client.get(visitor.url("conversations", private["id"]), headers=visitor.headers)
    assert hidden.status_code == 404


async def test_rating_a_resolved_conversation(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    conversation = await open_conversation(client, visitor)
    rating_url = visitor.url("conversations", conversation["id"], "rating")
    early = await client.put(rating_url, json={"score": 4}, headers=visitor.headers)
    assert early.status_code == 409
    assert early.json()["code"] == "conversation_not_resolved"
    await patch(client, owner, conversation["id"], status="resolved")
    for bad in ({"score": 0}, {"score": 6}, {"score": "5"}, {"score": 3, "comment": "x" * 2001}, {}):
        response = await client.put(rating_url, json=bad, headers=visitor.headers)
        assert response.status_code == 422, (bad, response.text)
    first = await client.put(rating_url, json={"score": 2, "comment": "slow"}, headers=visitor.headers)
    assert first.status_code == 200, first.text
    second = await client.put(rating_url, json={"score": 5, "comment": "sorted"}, headers=visitor.headers)
    assert (second.json()["score"], second.json()["comment"]) == (5, "sorted")
    members = await client.get(
        f"/orgs/{owner.organization_id}/conversations/{conversation['id']}/rating", headers=owner.headers
    )
    assert members.status_code == 200, members.text
    assert (members.json()["score"], members.json()["comment"]) == (5, "sorted")


async def test_attachments_go_both_ways_but_never_a_notes(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    conversation = await open_conversation(client, visitor)
    uploads = visitor.url("conversations", conversation["id"], "attachments")
    mine = await client.post(
        uploads, files={"file": ("receipt.txt", b"paid", "text/plain")}, headers=visitor.headers
    )
    assert mine.status_code == 201, mine.text
    posted = await client.post(
        visitor.url("conversations", conversation["id"], "messages"),
        json={"body": "See attached", "attachment_ids": [mine.json()["id"]]},
        headers=visitor.headers,
    )
    assert posted.status_code == 201, posted.text
    assert [file["filename"] for file in posted.json()["attachments"]] == ["receipt.txt"]
    downloaded = await client.get(f"{uploads}/{mine.json()['id']}", headers=visitor.headers)
    assert (downloaded.status_code, downloaded.content) == (200, b"paid")
    # The team's upload attached to a note stays with the team; one not yet attached cannot be taken.
    team_uploads = f"/orgs/{owner.organization_id}/conversations/{conversation['id']}/attachments"
    secret = await client.post(
        team_uploads, files={"file": ("notes.txt", b"internal", "text/plain")}, headers=owner.headers
    )
    loose = await client.post(
        team_uploads, files={"file": ("draft.txt", b"draft", "text/plain")}, headers=owner.headers
    )
    await created(
        client,
        owner,
        f"conversations/{conversation['id']}/messages",
        {"kind": "note", "body": "see file", "attachment_ids": [secret.json()["id"]]},
    )
    for attachment_id in (secret.json()["id"], loose.json()["id"]):
        response = await client.get(f"{uploads}/{attachment_id}", headers=visitor.headers)
        assert response.status_code == 404, response.text
    taken = await client.post(
        visitor.url("conversations", conversation["id"], "messages"),
        json={"body": "mine now", "attachment_ids": [loose.json()["id"]]},
        headers=visitor.headers,
    )
    assert taken.status_code == 422
    assert taken.json()["code"] == "unknown_attachment"


async def test_open_conversations_are_capped_even_when_started_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(WIDGET_MAX_OPEN_CONVERSATIONS=2)) as client:
        owner = await new_owner(client)
        inbox = await widget_inbox(client, owner)
        visitor = await start(client, inbox["id"])
        body = {"message": {"body": "hi"}}
        answers = await asyncio.gather(
            *(client.post(visitor.url("conversations"), json=body, headers=visitor.headers) for _ in range(5))
        )
        assert sorted(answer.status_code for answer in answers) == [201, 201, 409, 409, 409]
        refused = next(answer for answer in answers if answer.status_code == 409)
        assert refused.json()["code"] == "too_many_open_conversations"
        first = next(answer for answer in answers if answer.status_code == 201).json()
        await patch(client, owner, first["id"], status="resolved")
        again = await client.post(visitor.url("conversations"), json=body, headers=visitor.headers)
        assert again.status_code == 201, again.text


async def test_visitors_and_addresses_are_rate_limited(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        RATE_LIMIT_WIDGET_PER_VISITOR="3/minute", RATE_LIMIT_WIDGET_SESSIONS_PER_IP="4/hour"
    )
    async with serve(settings) as client:
        owner = await new_owner(client)
        inbox = await widget_inbox(client, owner)
        visitor = await start(client, inbox["id"])
        statuses = [
            (await client.get(visitor.url("conversations"), headers=visitor.headers)).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        other = await start(client, inbox["id"])  # another visitor has their own allowance
        assert (await client.get(other.url("conversations"), headers=other.headers)).status_code == 200
        sessions = [
            (await client.post(f"/widget/v1/inboxes/{inbox['id']}/session", json={})).status_code
            for _ in range(3)
        ]
        assert sessions == [201, 201, 429]  # 2 started above, then 2 more, then the address's limit


async def test_cors_allows_exactly_the_inboxs_origins(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner, allowed_origins=["https://shop.example"])
    session = f"/widget/v1/inboxes/{inbox['id']}/session"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = await client.options(session, headers={"Origin": "https://shop.example", **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    for origin in ("https://evil.example", "http://shop.example", "null"):
        refused = await client.options(session, headers={"Origin": origin, **preflight})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        assert refused.headers["content-type"] == "application/problem+json"
    started = await client.post(session, json={}, headers={"Origin": "https://shop.example"})
    assert started.status_code == 201
    assert started.headers["access-control-allow-origin"] == "https://shop.example"
    assert (
        await client.post(session, json={}, headers={"Origin": "https://evil.example"})
    ).status_code == 403
    # The members' CORS_ORIGINS do not open the widget, nor the widget's origins the members' API.
    members = await client.options(
        "/auth/login", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    )
    assert members.headers.get("access-control-allow-origin") != "https://shop.example"


async def test_a_visitors_stream_has_their_replies_and_never_a_note(
    client: AsyncClient, settings: Settings
) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    someone_else = await start(client, inbox["id"])
    conversation = await open_conversation(client, visitor)
    async with (
        live_server(settings) as base,
        opened(base, visitor.url("events", "stream"), visitor.headers) as stream,
    ):
        await open_conversation(client, someone_else)  # another visitor's: never seen
        await _member_reply(client, owner, conversation["id"], "note", "internal only")
        await _member_reply(client, owner, conversation["id"], "outgoing", "Here to help")
        await patch(client, owner, conversation["id"], status="resolved")
        started = await open_conversation(client, visitor, "One more thing")
        received = await stream.take(4)
    assert [event.event for event in received] == [
        "message.created",
        "conversation.status_changed",
        "conversation.created",
        "message.created",
    ]
    kinds = [(event.event, event.data["data"]) for event in received]
    assert kinds[0][1]["message"]["body"] == "Here to help"
    assert set(kinds[0][1]["message"]) == {
        "id",
        "conversation_id",
        "kind",
        "body",
        "created_at",
        "attachments",
    }
    assert kinds[1][1]["conversation"]["status"] == "resolved"
    assert "assignee_id" not in kinds[1][1]["conversation"]
    assert kinds[2][1]["conversation"]["id"] == started["id"]
    assert kinds[3][1]["message"]["body"] == "One more thing"
    every = " ".join(str(event.data) for event in received)
    assert "internal only" not in every


def _routes() -> list[tuple[str, str, APIRoute]]:
    return [
        (method, route.path, route)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    ]


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda match: values.get(match.group(1), str(uuid.uuid4())), path)


async def test_visitor_tokens_and_member_tokens_refuse_each_others_routes(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    conversation = await open_conversation(client, visitor)
    values = {"org_id": owner.organization_id, "inbox_id": inbox["id"], "conversation_id": conversation["id"]}
    widget_routes = member_routes = 0
    for method, path, route in _routes():
        declared = declared_access(route.endpoint)
        dependencies = {declared_access(dependant.call) for dependant in route.dependant.dependencies}
        if path.startswith("/widget/"):
            if declared == "public":
                continue  # the session's start: no token at all
            assert "widget_visitor" in dependencies, path
            response = await client.request(method, _fill(path, values), headers=owner.headers, json={})
            widget_routes += 1
        elif dependencies - {None, "public", "widget_visitor"} and declared != "public":
            response = await client.request(method, _fill(path, values), headers=visitor.headers, json={})
            member_routes += 1
        else:
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert widget_routes >= 10
    assert member_routes >= 60
