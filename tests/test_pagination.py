"""Cursors are signed and bound to their list: a position a client made up, or one from another list
or another deployment, is a 400 `invalid_cursor`, never a database error (issue 9, point 8)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.routing import APIRoute
from httpx import AsyncClient
from hypothesis import given
from hypothesis import strategies as st

from aisupport.core.config import PROJECT_ROOT, Settings
from aisupport.core.errors import AppError
from aisupport.core.pagination import CURSOR_PATTERN, CursorSigner, Page, PageRequest, page_request
from aisupport.core.security import derive_key
from aisupport.main import ROUTERS
from tests.conftest import Mailbox, serve
from tests.organizations.helpers import Person, add_member, login, new_organization, new_owner
from tests.test_properties import PROPERTY_SETTINGS

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def _unsigned(raw: str) -> str:
    """A cursor as the old, unsigned format wrote one: base64url of a JSON position."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _assert_invalid_cursor(response: object) -> None:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert response.json()["code"] == "invalid_cursor"  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]


async def test_a_position_the_client_made_up_is_400(client: AsyncClient) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    made_up = {
        f"{org}/audit-log": ['["99999999999999999999"]', '["-1"]', '["1"]'],
        f"{org}/members": [
            f'["2020-01-01T00:00:00+00:00", "{uuid.uuid4()}"]',
            '["9999-12-31T23:59:59", "x"]',
        ],
        "/orgs": [f'["0001-01-01T00:00:00+00:00", "{uuid.UUID(int=0)}"]'],
    }
    for path, positions in made_up.items():
        for position in positions:
            _assert_invalid_cursor(
                await client.get(path, params={"cursor": _unsigned(position)}, headers=owner.headers)
            )


async def test_a_cursor_works_only_on_the_list_that_gave_it(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    await add_member(client, mailbox, owner, "agent")
    second = await new_organization(client, owner)
    await add_member(client, mailbox, owner, "agent", organization_id=second)
    members = f"/orgs/{owner.organization_id}/members"
    first_page = await client.get(members, params={"limit": 1}, headers=owner.headers)
    cursor = first_page.json()["next_cursor"]
    assert URL_SAFE.match(cursor)
    assert len(cursor) <= 200

    next_page = await client.get(members, params={"limit": 1, "cursor": cursor}, headers=owner.headers)
    assert next_page.status_code == 200
    assert next_page.json()["items"][0]["user_id"] != first_page.json()["items"][0]["user_id"]
    for other_list in (
        f"/orgs/{second}/members",  # the same list of another organization
        f"/orgs/{owner.organization_id}/api-keys",  # another list of the same organization
        f"/orgs/{owner.organization_id}/invitations",
        "/orgs",
    ):
        _assert_invalid_cursor(await client.get(other_list, params={"cursor": cursor}, headers=owner.headers))
    # The organization's id written another way is still the same list.
    upper = f"/orgs/{owner.organization_id.upper()}/members"
    assert (await client.get(upper, params={"cursor": cursor}, headers=owner.headers)).status_code == 200


async def test_cursors_are_signed_with_the_deployments_key_and_survive_a_rollover(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    old_key, new_key = "o" * 48, "n" * 48
    async with serve(make_settings(SECRET_KEY=old_key)) as before:
        owner = await new_owner(before)
        await add_member(before, mailbox, owner, "agent")
        members = f"/orgs/{owner.organization_id}/members"
        cursor = (await before.get(members, params={"limit": 1}, headers=owner.headers)).json()["next_cursor"]

    async def use(settings: Settings) -> int:
        async with serve(settings) as after:
            person: Person = await login(after, owner)
            response = await after.get(members, params={"cursor": cursor}, headers=person.headers)
            return response.status_code

    assert await use(make_settings(SECRET_KEY=new_key, SECRET_KEY_PREVIOUS=old_key)) == 200
    assert await use(make_settings(SECRET_KEY=new_key)) == 400  # another deployment's, or a retired key's


def test_changing_any_character_of_a_cursor_invalidates_it() -> None:
    signer = CursorSigner((derive_key("k" * 48, "cursor"),), "GET /orgs/{org_id}/members org_id=x")
    position = (datetime(2026, 11, 29, 12, 0, tzinfo=UTC), uuid.uuid4())
    cursor = signer.sign(position)
    assert signer.verify(cursor, datetime.fromisoformat, uuid.UUID) == position
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last character's low bits may be padding that base64 ignores; every other one counts.
    for index, char in enumerate(cursor[:-1]):
        for shift in (1, 32):
            tampered = cursor[:index] + alphabet[(alphabet.index(char) + shift) % 64] + cursor[index + 1 :]
            with pytest.raises(AppError) as refused:
                signer.verify(tampered, datetime.fromisoformat, uuid.UUID)
            assert refused.value.code == "invalid_cursor"
    with pytest.raises(AppError, match="not one this list gave out"):
        CursorSigner(signer.keys, "GET /orgs/{org_id}/api-keys org_id=x").verify(
            cursor, datetime.fromisoformat, uuid.UUID
        )


@PROPERTY_SETTINGS
@given(
    cursor=st.text(min_size=1, max_size=200) | st.from_regex(CURSOR_PATTERN).filter(lambda c: len(c) <= 200)
)
async def test_arbitrary_cursors_are_refused_never_a_server_error(client: AsyncClient, cursor: str) -> None:
    owner = await _cached_owner(client)
    response = await client.get(
        f"/orgs/{owner.organization_id}/audit-log", params={"cursor": cursor}, headers=owner.headers
    )
    # (fullmatch: in JSON Schema, as in pydantic, `$` is the end of the text, not a final newline)
    if re.fullmatch(CURSOR_PATTERN.removeprefix("^").removesuffix("$"), cursor):  # not given out: 400
        _assert_invalid_cursor(response)
    else:  # outside the schema's pattern: invalid, as any value the schema refuses
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


_OWNERS: dict[int, Person] = {}


async def _cached_owner(client: AsyncClient) -> Person:
    # One sign-up per test app, not per example.
    key = id(client.app)  # type: ignore[attr-defined]
    if key not in _OWNERS:
        _OWNERS[key] = await new_owner(client)
    return _OWNERS[key]


def test_a_page_is_cut_to_its_limit_with_the_cursor_of_its_last_row() -> None:
    signer = CursorSigner((b"k" * 32,), "GET /things ")
    request = PageRequest(limit=2, cursor=None, signer=signer)
    full = request.page([1, 2, 3], lambda row: (row,), str)
    assert full.items == ["1", "2"]
    assert full.next_cursor is not None
    assert signer.verify(full.next_cursor, int) == (2,)
    assert request.page([1, 2], lambda row: (row,), str) == Page(items=["1", "2"], next_cursor=None)
    assert request.page([], lambda row: (row,), str) == Page(items=[], next_cursor=None)


def test_every_list_route_answers_its_page_through_paging() -> None:
    lists = [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        and isinstance(route.response_model, type)
        and issubclass(route.response_model, Page)
    ]
    assert len(lists) >= 7
    for route in lists:
        assert any(dependency.call is page_request for dependency in route.dependant.dependencies), route.path
    by_hand = [
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "src" / "aisupport").rglob("*.py")
        if path.name != "pagination.py" and re.search(r"\bPage\(", path.read_text())
    ]
    assert by_hand == []
