"""The OpenAPI document is the contract: every error documented where it can arise, typed as a Problem,
with names a generated client can use, and a schema that admits exactly what the API accepts."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from httpx import AsyncClient
from pydantic import BaseModel

from aisupport.access.dependencies import requires
from aisupport.access.permissions import Permission
from aisupport.core.config import Settings
from aisupport.core.errors import ProblemAnswer, answers
from aisupport.core.pagination import Cursor
from aisupport.main import create_app
from tests.conftest import bearer, new_email, signup

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
UNSAFE = {"post", "put", "patch", "delete"}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


def errors_of(operation: dict[str, Any]) -> dict[str, Any]:
    return {code: spec for code, spec in operation["responses"].items() if code[0] in "45"}


async def test_every_error_answer_is_a_typed_problem(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    problem = schema["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail", "code"]
    assert problem["properties"]["errors"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's 422 is not ours
    for method, path, operation in operations(schema):
        errors = errors_of(operation)
        assert {"500", "503"} <= set(errors), (method, path)
        for code, spec in errors.items():
            assert spec["content"] == PROBLEM, (method, path, code)
            assert spec["description"].startswith(HTTPStatus(int(code)).phrase), (method, path, code)
        if "401" in errors:
            assert errors["401"]["headers"]["WWW-Authenticate"]["required"], (method, path)
        if "429" in errors:
            assert errors["429"]["headers"]["Retry-After"]["required"], (method, path)


async def test_errors_are_documented_where_they_arise(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for method, path, operation in operations(schema):
        documented = set(errors_of(operation))
        where = (method, path)
        content = operation.get("requestBody", {}).get("content", {})
        parameters = operation.get("parameters", [])
        if "application/json" in content:
            assert {"400", "413", "415", "422"} <= documented, where
        if "application/x-www-form-urlencoded" in content:
            assert {"400", "413", "422"} <= documented, where
        if any(parameter["in"] == "path" for parameter in parameters):
            assert {"404", "422"} <= documented, where
        if parameters:
            assert "422" in documented, where
        if method in UNSAFE:
            assert "409" in documented, where  # a concurrent write to the same thing won
        if any(parameter["name"] == "cursor" for parameter in parameters):
            assert "400" in documented, where  # a cursor the list never gave out
        security = operation.get("security", [])
        if security:
            assert "401" in documented, where
        if security and {} not in security:  # signed-in routes: a role may lack the permission, and
            assert {"403", "429"} <= documented, where  # API keys have a request limit
    # Routes that count requests against a limit say so (sign-in, sign-up, links, invitations).
    for path in (
        "/auth/signup",
        "/auth/login",
        "/auth/token",
        "/auth/password/forgot",
        "/invitations/accept",
    ):
        assert "429" in schema["paths"][path]["post"]["responses"], path


class Widget(BaseModel):
    name: str


async def test_a_new_route_documents_its_errors_without_a_list(settings: Settings) -> None:
    """A route added tomorrow gets its errors from what it takes and runs, as every route today does."""

    @answers(ProblemAnswer(409, "the widget is locked", methods=frozenset({"PATCH"})))
    async def widget_lock() -> None:
        """A dependency answering an error of its own, for one method only."""

    router = APIRouter()
    editor = Depends(requires(Permission.ORG_UPDATE))

    @router.get("/orgs/{org_id}/widgets", dependencies=[editor, Depends(widget_lock)])
    async def list_widgets(org_id: uuid.UUID, cursor: Cursor = None) -> list[Widget]:
        return []

    @router.patch("/orgs/{org_id}/widgets/{widget_id}", dependencies=[editor, Depends(widget_lock)])
    async def rename_widget(org_id: uuid.UUID, widget_id: uuid.UUID, widget: Widget) -> Widget:
        return widget

    @router.get("/widgets/search", status_code=status.HTTP_204_NO_CONTENT)
    async def search_widgets(widget: Annotated[Widget, Depends()]) -> None:
        return None

    app = create_app(settings)
    app.include_router(router)
    paths = app.openapi()["paths"]

    def documented(path: str, method: str) -> set[str]:
        return set(errors_of(paths[path][method]))

    assert documented("/orgs/{org_id}/widgets", "get") == {
        "400",
        "401",
        "403",
        "404",
        "422",
        "429",
        "500",
        "503",
    }
    assert documented("/orgs/{org_id}/widgets/{widget_id}", "patch") == {
        *("400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503")
    }
    assert documented("/widgets/search", "get") == {"422", "500", "503"}  # query parameters only
    description = paths["/orgs/{org_id}/widgets/{widget_id}"]["patch"]["responses"]["409"]["description"]
    assert description.startswith("Conflict: ")
    assert "the widget is locked" in description


async def test_schema_names_are_unique_and_meaningful(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for name in schema["components"]["schemas"]:
        # FastAPI writes a model's module path into its name when two models share a name, and makes up
        # `Body_<operation>` for a form without a model: generated clients get both as class names.
        assert "__" not in name, name
        assert not name.startswith("Body_"), name
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", operation_id) for operation_id in ids), ids


async def test_405_names_every_method_of_the_path(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, methods in schema["paths"].items():
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        unused = next(
            method for method in ("PUT", "PATCH", "DELETE", "POST") if method.lower() not in methods
        )
        for method in (unused, "OPTIONS"):
            response = await client.request(method, url)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == ", ".join(sorted(m.upper() for m in methods)), (method, path)
            assert response.json()["code"] == "method_not_allowed"


async def test_the_schema_says_which_values_are_refused(client: AsyncClient) -> None:
    """Values the API refuses are refused by the schema too, so that generated and fuzzed clients,
    which trust the schema, are never refused a request it admits."""
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    owner = (await signup(client)).json()
    headers = bearer(owner["access_token"])
    org = f"/orgs/{owner['organization']['id']}"

    cursor = next(p for p in schema["paths"]["/orgs"]["get"]["parameters"] if p["name"] == "cursor")
    pattern = cursor["schema"]["anyOf"][0]["pattern"]
    assert not re.search(pattern, "a cursor!")
    outside = await client.get("/orgs", params={"cursor": "a cursor!"}, headers=headers)
    assert outside.status_code == 422
    assert re.search(pattern, "bm90LWlzc3VlZA")
    never_issued = await client.get("/orgs", params={"cursor": "bm90LWlzc3VlZA"}, headers=headers)
    assert never_issued.status_code == 400
    assert never_issued.json()["code"] == "invalid_cursor"

    # `date-time` is RFC 3339 text with an offset: pydantic alone would also read numbers and dates.
    for until in ("0.5", "1700000000", "2026-01-01", "2026-01-01T00:00:00"):
        refused = await client.get(f"{org}/audit-log", params={"until": until}, headers=headers)
        assert refused.status_code == 422, until
    for until in ("2026-01-01T00:00:00Z", "2026-01-01t00:00:00.5+02:00"):
        accepted = await client.get(f"{org}/audit-log", params={"until": until}, headers=headers)
        assert accepted.status_code == 200, until

    # `confirm` is a slug: anything else is refused as invalid, a slug of another organization as such.
    assert components["OrganizationDelete"]["properties"]["confirm"]["pattern"].startswith("^[a-z0-9]")
    not_a_slug = await client.request("DELETE", org, json={"confirm": "Not A Slug"}, headers=headers)
    assert not_a_slug.json()["code"] == "validation_error"
    other_slug = await client.request("DELETE", org, json={"confirm": "another-org"}, headers=headers)
    assert other_slug.json()["code"] == "confirmation_mismatch"

    # Text cannot hold NUL characters, and addresses cannot be at special-use domains (RFC 6761).
    login = components["LoginRequest"]["properties"]
    assert not re.search(login["password"]["pattern"], "a\x00b")
    nul = await client.post("/auth/login", json={"email": new_email(), "password": "a\x00b"})
    assert nul.status_code == 422
    assert not re.search(login["email"]["pattern"], "someone@mail.test")
    assert re.search(login["email"]["pattern"], "someone@testing.example.com")
    special_use = await client.post("/auth/password/forgot", json={"email": "someone@mail.test"})
    assert special_use.status_code == 422
    json_value = components["JsonValue"]  # organization settings: any JSON, at any depth, without NUL
    assert not re.search(json_value["pattern"], "a\x00b")
    assert not re.search(json_value["propertyNames"]["pattern"], "a\x00b")
    nested_nul = await client.patch(org, json={"settings": {"a": [{"b": "\x00"}]}}, headers=headers)
    assert nested_nul.status_code == 422


async def test_swagger_ui_is_served(client: AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
