"""The errors of authentication and authorization, referenced by name."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer, Unauthorized

ORGANIZATION_NOT_FOUND = ProblemAnswer(404, "no such organization")
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = ProblemAnswer(
    403,
    f"a cookie-authenticated request without a matching `{CSRF_HEADER}`, or from an origin not allowed",
    methods=frozenset({"POST", "PUT", "PATCH", "DELETE"}),
)


def origin_not_allowed() -> AppError:
    return AppError(403, "origin_not_allowed", "Requests from this origin are not allowed.")


def csrf_failed() -> AppError:
    return AppError(403, "csrf_failed", f"The {CSRF_HEADER} header must equal the csrf_token cookie.")


def invalid_access_token() -> Unauthorized:
    # One answer for every kind of bad token, so a caller learns nothing from the difference.
    return Unauthorized("invalid_token", "The access token is invalid, expired or revoked.")


def invalid_visitor_token() -> Unauthorized:
    return Unauthorized("invalid_visitor_token", "The visitor token is invalid, expired or revoked.")


def invalid_api_key(*, keep_changes: bool = False) -> Unauthorized:
    return Unauthorized(
        "invalid_api_key", "The API key is invalid, expired or revoked.", keep_changes=keep_changes
    )


def organization_not_found() -> AppError:
    return AppError(404, "organization_not_found", "No such organization.")


def forbidden(detail: str) -> AppError:
    return AppError(403, "forbidden", detail)


def role_does_not_allow(permission: str) -> AppError:
    return forbidden(f"Your role does not allow this ({permission}).")


def person_only() -> AppError:
    """For what only a signed-in person can do (an API key, the AI or the system cannot)."""
    return forbidden("Only a signed-in person can do this.")
