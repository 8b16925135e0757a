"""The OpenAPI document, with every error answer documented from where it arises.

Routes do not list the errors that follow from what they take and run; they are derived here, so a new
route cannot forget one:
- every operation: 500 (unexpected) and 503 (database unreachable); every write (POST, PUT, PATCH,
  DELETE): 409 (a concurrent change to the same thing won: the error handlers' net for races);
- parameters or a body: 422; path parameters (ids): 404;
- a body: 413 and 400 (undecodable), and 415 when it is JSON;
- a security scheme: 401; a permission check (core/access.py): 403;
- whatever a dependency declares with `answers(...)` (core/errors.py), e.g. the rate limiter's 429,
  and whatever a parameter's type declares in its metadata (`Annotated[str, Query(), ProblemAnswer(...)]`,
  e.g. the list cursor's 400).
A route lists only the errors of its own business rules (`responses=problem_responses(409)`).

Every error answer is then `application/problem+json` with the Problem schema (and its headers:
`WWW-Authenticate` on 401, `Retry-After` on 429 and 503), so generated clients get typed errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import email_validator
from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security.base import SecurityBase
from pydantic.json_schema import models_json_schema

from aisupport.access.routes import declared_access
from aisupport.core.errors import PROBLEM_MEDIA_TYPE, Problem, ProblemAnswer, declared_answers

SCHEMA_REF = "#/components/schemas/{model}"
BEARER_SCHEME = "HTTPBearer"
PROBLEM_SCHEMA = {"$ref": SCHEMA_REF.format(model="Problem")}

UNEXPECTED = ProblemAnswer(500, "an unexpected error; its details are in the server log only")
UNAVAILABLE = ProblemAnswer(503, "the database cannot be reached; try again after `Retry-After` seconds")
INVALID = ProblemAnswer(422, "a parameter or the body is not valid; `errors` says where and why")
NOT_FOUND = ProblemAnswer(404, "nothing with this id, or nothing of yours")
TOO_LARGE = ProblemAnswer(413, "the body is larger than the limit")
UNDECODABLE = ProblemAnswer(400, "the body cannot be decoded")
NOT_JSON = ProblemAnswer(415, "the body is not `application/json`")
UNAUTHENTICATED = ProblemAnswer(401, "no credentials, or invalid, expired or revoked ones")
NOT_PERMITTED = ProblemAnswer(403, "your role does not allow this")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOST_RACE = ProblemAnswer(409, "a concurrent change to the same thing won; try again", methods=WRITES)

# Headers the error handlers set on these statuses (problem_response, RateLimited, _database_unavailable).
_RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
ERROR_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`.", "required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": _RETRY_AFTER},
}

# What the API refuses in request text, said in the schema so that every schema-valid request is
# accepted: NUL characters (PostgreSQL cannot store them; core/schemas.py refuses them), and addresses
# at the special-use domains (RFC 6761) that email-validator refuses because mail cannot reach them.
NO_NUL_PATTERN = "^[^\\u0000]*$"
# Formats whose values cannot hold a NUL anyway.
_STRUCTURED_FORMATS = frozenset({"email", "uuid", "date-time", "date", "time", "uri", "binary"})


def _any_case(word: str) -> str:
    # JSON Schema patterns (ECMA-262) have no case-insensitive flag.
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else re.escape(char) for char in word)


EMAIL_PATTERN = "^(?!.*@(?:[^@]*\\.)?(?:{})\\.?$)".format(
    "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
)


def install_problem_documentation(app: FastAPI) -> None:
    """Make `app.openapi()` document every error answer, as the module docstring says."""
    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build_document()
            document_problems(document, app)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operation id: its handler's name (a test keeps them unique)."""
    return route.name


def document_problems(document: dict[str, Any], app: FastAPI) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_problem_schemas())
    if schemas.get("JsonValue") == {}:
        schemas["JsonValue"] = _json_value_without_nul()
    for route in _api_routes(app):
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            _complete_responses(operation["responses"], route_problems(route, method))
            if operation.get("security") and _is_public(route):
                operation["security"].append({})  # credentials are optional: anonymous calls are fine
            _document_request_text(operation, schemas)
    _state_bearer_tokens_plainly(document)
    _drop_unreferenced(schemas, ("HTTPValidationError", "ValidationError"), document)
    document["components"]["schemas"] = dict(sorted(schemas.items()))


def _state_bearer_tokens_plainly(document: dict[str, Any]) -> None:
    """Offer `http` `bearer` next to each OAuth2 scheme: the same `Authorization: Bearer` header.

    The OAuth2 password scheme is what gives Swagger UI its sign-in form; clients and testing tools
    (Schemathesis among them) know only the plain scheme as a header they can set and remove.
    """
    schemes = document.get("components", {}).get("securitySchemes", {})
    oauth2 = {name for name, scheme in schemes.items() if scheme.get("type") == "oauth2"}
    if not oauth2:
        return
    schemes[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token (sign in with `transport=body`), or an API key (sk_...).",
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            security = operation.get("security", [])
            for position, requirement in enumerate(security):
                if oauth2 & requirement.keys():
                    security.insert(position + 1, {BEARER_SCHEME: []})
                    break


def route_problems(route: RouteContext, method: str) -> list[ProblemAnswer]:
    """The errors a route can answer whatever its business rules: see the module docstring."""
    problems = [UNEXPECTED, UNAVAILABLE, LOST_RACE]
    dependants = list(_walk(route.dependant))
    parameters = [
        field
        for dependant in dependants
        for field in (
            *dependant.path_params,
            *dependant.query_params,
            *dependant.header_params,
            *dependant.cookie_params,
        )
    ]
    if parameters or route.body_field is not None:
        problems.append(INVALID)
    if any(dependant.path_params for dependant in dependants):
        problems.append(NOT_FOUND)
    if route.body_field is not None:
        problems += [TOO_LARGE, UNDECODABLE]
        if not isinstance(route.body_field.field_info, params.Form):
            problems.append(NOT_JSON)
    for field in parameters:
        problems += [item for item in field.field_info.metadata if isinstance(item, ProblemAnswer)]
    for dependant in dependants:
        if isinstance(dependant.call, SecurityBase):
            problems.append(UNAUTHENTICATED)
        if declared_access(dependant.call) not in (None, "public"):
            problems.append(NOT_PERMITTED)
        problems += declared_answers(dependant.call)
    return [problem for problem in problems if problem.methods is None or method in problem.methods]


def _is_public(route: RouteContext) -> bool:
    return any(declared_access(dependant.call) == "public" for dependant in _walk(route.dependant))


def _api_routes(app: FastAPI) -> Iterator[RouteContext]:
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _walk(dependency)


def _problem_schemas() -> dict[str, Any]:
    _, schema = models_json_schema([(Problem, "serialization")], ref_template=SCHEMA_REF)
    definitions: dict[str, Any] = schema["$defs"]
    return definitions


def _complete_responses(responses: dict[str, Any], problems: list[ProblemAnswer]) -> None:
    # FastAPI's own 422 (its HTTPValidationError shape) is not what the API answers.
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
    if default_422 == {"$ref": SCHEMA_REF.format(model="HTTPValidationError")}:
        del responses["422"]
    reasons: dict[int, list[str]] = {}
    for key, response in responses.items():
        if key.isdigit() and int(key) >= 400:
            reasons[int(key)] = _reasons_of(int(key), response.get("description", ""))
    for problem in problems:
        known = reasons.setdefault(problem.status, [])
        if problem.reason not in known:
            known.append(problem.reason)
    for status, why in reasons.items():
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase + (f": {'; '.join(why)}." if why else "."),
            "headers": ERROR_HEADERS.get(status, {}),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        if not responses[str(status)]["headers"]:
            del responses[str(status)]["headers"]
    responses_in_order = dict(sorted(responses.items()))
    responses.clear()
    responses.update(responses_in_order)


def _reasons_of(status: int, description: str) -> list[str]:
    """The reason a route gave for an error (problem_responses writes "Phrase: reason.")."""
    phrase = HTTPStatus(status).phrase
    reason = description.removeprefix(phrase).removeprefix(":").strip().removesuffix(".")
    return [reason] if reason else []


def _json_value_without_nul() -> dict[str, Any]:
    """Any JSON value whose text (strings and keys, at any depth) holds no NUL: pydantic's `JsonValue`
    said fully. Keywords without a `type` apply only to values of their kind, so the value stays untyped
    for generators (a recursive union of types is beyond some, openapi-python-client among them)."""
    itself = {"$ref": SCHEMA_REF.format(model="JsonValue")}
    return {
        "pattern": NO_NUL_PATTERN,
        "items": itself,
        "propertyNames": {"pattern": NO_NUL_PATTERN},
        "additionalProperties": itself,
    }


def _document_request_text(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add to the request's text fields the patterns of what the API refuses (see NO_NUL_PATTERN)."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "path":
            _document_text(parameter.get("schema", {}), schemas, set())
    for content in operation.get("requestBody", {}).get("content", {}).values():
        _document_text(content.get("schema", {}), schemas, set())


def _document_text(schema: Any, schemas: dict[str, Any], seen: set[str]) -> None:
    if not isinstance(schema, dict):
        return
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith(SCHEMA_REF.format(model="")):
        name = reference.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _document_text(schemas.get(name), schemas, seen)
        return
    if schema.get("type") == "object" and "propertyNames" not in schema:
        schema["propertyNames"] = {"pattern": NO_NUL_PATTERN}
    if schema.get("type") == "string" and not {"pattern", "enum", "const"} & schema.keys():
        if schema.get("format") == "email":
            schema["pattern"] = EMAIL_PATTERN
        elif schema.get("format") not in _STRUCTURED_FORMATS:
            schema["pattern"] = NO_NUL_PATTERN
    for key in ("properties", "$defs"):
        for child in schema.get(key, {}).values():
            _document_text(child, schemas, seen)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for child in schema.get(key, []):
            _document_text(child, schemas, seen)
    for key in ("items", "additionalProperties"):
        _document_text(schema.get(key), schemas, seen)


def _drop_unreferenced(schemas: dict[str, Any], names: tuple[str, ...], document: dict[str, Any]) -> None:
    for name in names:
        if name in schemas and SCHEMA_REF.format(model=name) not in _references(document, skip=name):
            del schemas[name]


def _references(document: dict[str, Any], *, skip: str) -> set[str]:
    found: set[str] = set()

    def visit(node: Any, inside: str | None) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and inside != skip:
                    found.add(value)
                visit(value, inside)
        elif isinstance(node, list):
            for item in node:
                visit(item, inside)

    for key, value in document.items():
        if key != "components":
            visit(value, None)
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        visit(schema, name)
    return found
