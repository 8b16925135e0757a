"""RFC 9457 problem details: the one error shape of the API.

Every error (ours, FastAPI's, Starlette's, and unexpected exceptions) is answered as
`application/problem+json` with `type`, `title`, `status`, `detail` and a stable `code`. Which errors a
route can answer is documented in OpenAPI from where they arise (aisupport/openapi.py); a dependency that
answers errors of its own declares them with `answers(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from procrastinate.exceptions import ConnectorException
from psycopg import errors as pg_errors
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://aisupport.dev/problems/"
DATABASE_RETRY_AFTER_SECONDS = 5

log = structlog.get_logger("aisupport.errors")


class FieldError(BaseModel):
    """One invalid part of a request: where it is, and what is wrong with it (never the value)."""

    loc: list[str] = Field(description='Where: e.g. ["body", "email"] or ["query", "limit"].')
    msg: str
    type: str | None = Field(default=None, description="The kind of error, e.g. `string_too_long`.")


class Problem(BaseModel):
    """An RFC 9457 problem document: the body of every error answer."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What went wrong, for people.")
    code: str = Field(description="What went wrong, for programs: stable, snake_case.")
    errors: list[FieldError] | None = Field(default=None, description="Validation errors (422) only.")


class AppError(Exception):
    """An error the API answers on purpose.

    `keep_changes` commits the request's transaction before answering, for errors whose side effect
    must persist (revoking a token family on reuse).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.keep_changes = keep_changes


class Unauthorized(AppError):
    def __init__(self, code: str = "not_authenticated", detail: str = "Authentication required.", **kw: Any):
        headers = {"WWW-Authenticate": "Bearer"}
        super().__init__(401, code, detail, headers=headers, **kw)


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    problem = Problem(
        type=PROBLEM_TYPE_BASE + code.replace("_", "-"),
        title=title,
        status=status,
        detail=detail,
        code=code,
        errors=errors,
    )
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status,
        headers=all_headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


# Codes for the errors Starlette and FastAPI raise themselves.
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
}


def _safe_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the rejected input may be a password and is never echoed.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc.status, exc.code, exc.detail, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    allowed = _allowed_methods(request) if exc.status_code == 405 else []
    if allowed:
        headers["Allow"] = ", ".join(allowed)
    return problem_response(exc.status_code, code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette's router answers 405 from the first route whose path matches, naming only that route's
    # methods; a path served by several routes (GET and PATCH /orgs/{org_id}) allows all of theirs.
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(dict(request.scope))
        if match is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _safe_validation_errors(exc)
    return problem_response(422, "validation_error", "The request is not valid.", errors=errors)


# PostgreSQL errors that mean "another transaction got in the way", not "the database is down".
_LOST_RACE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(getattr(exc, "orig", None), _LOST_RACE):
        return await _conflict(request, exc)
    log.error("database_unavailable", reason=type(exc).__name__, path=request.url.path)
    return problem_response(
        503,
        "database_unavailable",
        "The database is unavailable. Try again shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    # A value PostgreSQL refused (out of range, bad encoding) that validation should have caught:
    # the client's input, so a 422, and logged so the missing validation gets added.
    log.warning("unstorable_value", reason=type(getattr(exc, "orig", exc)).__name__, path=request.url.path)
    return problem_response(422, "invalid_value", "A value in the request cannot be stored.")


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    # Two requests raced for the same unique thing (an address, a membership) or the same row (updated
    # after another deleted it, a deadlock) and this one lost; the services lock and answer the known
    # cases precisely (404, 409), this is the net for the rest.
    log.info("write_conflict", path=request.url.path)
    return problem_response(409, "conflict", "This conflicts with a concurrent change. Try again.")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_exception", exc_info=exc, path=request.url.path)
    return problem_response(500, "internal_error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for database_error in (OperationalError, InterfaceError, SQLAlchemyTimeoutError, ConnectorException):
        app.add_exception_handler(database_error, _database_unavailable)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(StaleDataError, _conflict)
    app.add_exception_handler(Exception, _unexpected_error)


@dataclass(frozen=True)
class ProblemAnswer:
    """An error a dependency or route can answer, for the OpenAPI document: its status, why it happens,
    and the HTTP methods it is limited to (None: all)."""

    status: int
    reason: str
    methods: frozenset[str] | None = None


PROBLEM_ANSWERS_ATTRIBUTE = "__problem_answers__"
DependencyT = TypeVar("DependencyT")


def answers(*problems: ProblemAnswer) -> Callable[[DependencyT], DependencyT]:
    """Declare the errors a dependency answers itself; every route that runs it, directly or through
    other dependencies, documents them (aisupport/openapi.py)."""

    def declare(dependency: DependencyT) -> DependencyT:
        declared = getattr(dependency, PROBLEM_ANSWERS_ATTRIBUTE, ())
        setattr(dependency, PROBLEM_ANSWERS_ATTRIBUTE, (*declared, *problems))
        return dependency

    return declare


def declared_answers(dependency: object) -> tuple[ProblemAnswer, ...]:
    answered: tuple[ProblemAnswer, ...] = getattr(dependency, PROBLEM_ANSWERS_ATTRIBUTE, ())
    return answered


def problem_responses(*problems: int | ProblemAnswer) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the errors of a route's own business rules (a taken slug, an expired
    link); the errors that come from its parameters, body and dependencies are documented without
    being listed (aisupport/openapi.py), and every error gets the Problem schema there."""
    reasons: dict[int, list[str]] = {}
    for problem in problems:
        if isinstance(problem, int):
            reasons.setdefault(problem, [])
        else:
            reasons.setdefault(problem.status, []).append(problem.reason)
    return {
        status: {"description": HTTPStatus(status).phrase + (f": {'; '.join(why)}." if why else "")}
        for status, why in reasons.items()
    }
