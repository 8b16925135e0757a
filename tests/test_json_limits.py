"""Deeply nested or oversized JSON: refused early with a clear 4xx, never a 500 or a stalled server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from httpx import AsyncClient
from hypothesis import given
from hypothesis import strategies as st

from aisupport.core.json_limits import JsonObjectBounds, json_text_depth
from tests.organizations.helpers import new_owner
from tests.test_properties import PROPERTY_SETTINGS, json_values

JSON = {"content-type": "application/json"}


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def assert_too_deep(response: Any, started: float) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["type"] == "json_too_deep"
    assert time.monotonic() - started < 5  # 20 s before


async def test_login_with_a_field_nested_960_levels_is_a_fast_422(client: AsyncClient) -> None:
    # The reproduction: unauthenticated, a 500 from a recursion overflow before.
    for depth in (33, 200, 960, 5000, 30_000):
        body = '{"email": "a@example.com", "password": ' + nested_lists(depth) + "}"
        started = time.monotonic()
        response = await client.post("/auth/login", content=body, headers=JSON)
        assert_too_deep(response, started)


async def test_the_depth_limit_is_exact_and_strings_do_not_count(client: AsyncClient) -> None:
    # MAX_JSON_DEPTH (32): the body object is level 1, so 31 more levels pass the check.
    at_limit = '{"email": "a@example.com", "password": ' + nested_lists(31) + "}"
    passed = await client.post("/auth/login", content=at_limit, headers=JSON)
    assert passed.status_code == 422
    assert passed.json()["errors"][0]["type"] != "json_too_deep"  # refused as a wrong type, later
    brackets_in_text = json.dumps({"email": "a@example.com", "password": "[{" * 200 + '\\"'})
    wrong = await client.post("/auth/login", content=brackets_in_text, headers=JSON)
    assert wrong.status_code == 401  # an ordinary wrong password


async def test_a_utf16_body_is_measured_too(client: AsyncClient) -> None:
    body = ('{"email": "a@example.com", "password": ' + nested_lists(500) + "}").encode("utf-16")
    started = time.monotonic()
    assert_too_deep(await client.post("/auth/login", content=body, headers=JSON), started)


async def test_the_refusal_is_readable_across_origins(client: AsyncClient) -> None:
    origin = client.app.state.settings.CORS_ORIGINS[0]  # type: ignore[attr-defined]
    response = await client.post("/auth/login", content=nested_lists(100), headers={**JSON, "Origin": origin})
    assert response.status_code == 422
    assert response.headers["access-control-allow-origin"] == origin


async def test_settings_nested_256_levels_are_a_fast_422(client: AsyncClient) -> None:
    # The reproduction: a 500 after 20 s before (the value was stored, then could not be serialised).
    owner = await new_owner(client)
    started = time.monotonic()
    response = await client.patch(
        f"/orgs/{owner.organization_id}",
        content='{"settings": ' + nested_objects(256) + "}",
        headers={**owner.headers, **JSON},
    )
    assert_too_deep(response, started)
    unchanged = await client.get(f"/orgs/{owner.organization_id}", headers=owner.headers)
    assert unchanged.json()["settings"] == {}


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        (json.loads(nested_objects(9)), "8 levels"),
        ({"list": list(range(1001))}, "1000 keys and array items"),
        ({f"k{i}": [i] * 20 for i in range(60)}, "1000 keys and array items"),
        ({"text": "x" * 33_000}, "32768 bytes"),
    ],
)
async def test_organization_settings_are_bounded(
    client: AsyncClient, value: dict[str, Any], limit: str
) -> None:
    owner = await new_owner(client)
    path = f"/orgs/{owner.organization_id}"
    response = await client.patch(path, json={"settings": value}, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert limit in response.json()["errors"][0]["msg"]
    assert (await client.get(path, headers=owner.headers)).json()["settings"] == {}


async def test_settings_within_the_bounds_are_stored(client: AsyncClient) -> None:
    owner = await new_owner(client)
    path = f"/orgs/{owner.organization_id}"
    settings = {"deep": json.loads(nested_objects(7)), "list": list(range(990)), "text": "é" * 1000}
    response = await client.patch(path, json={"settings": settings}, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert (await client.get(path, headers=owner.headers)).json()["settings"] == settings


@PROPERTY_SETTINGS
@given(value=json_values, indent=st.sampled_from([None, 2]), ascii_only=st.booleans())
def test_text_depth_is_the_depth_of_the_parsed_value(
    value: Any, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert json_text_depth(text.encode()) == depth_of(value)
    assert json_text_depth(text.encode("utf-16")) == depth_of(value)


@PROPERTY_SETTINGS
@given(value=json_values)
def test_object_bounds_agree_with_the_parsed_value(value: Any) -> None:
    document = {"value": value}
    bounds = JsonObjectBounds(max_depth=3, max_items=6, max_bytes=60)
    items = 0
    pending: list[Any] = [document]
    while pending:
        node = pending.pop()
        members = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        items += len(members)
        pending.extend(members)
    size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
    within = depth_of(document) <= 3 and items <= 6 and size <= 60
    try:
        bounds.check(document)
    except ValueError:
        assert not within
    else:
        assert within
