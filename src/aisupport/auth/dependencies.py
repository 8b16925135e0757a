"""Who is calling: the access token from `Authorization: Bearer` (preferred) or the cookie."""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from aisupport.auth import service
from aisupport.auth.cookies import request_cookies
from aisupport.auth.principal import API_KEY_PREFIX, Principal
from aisupport.auth.service import AuthComponents, invalid_access_token
from aisupport.core.client import Client
from aisupport.core.db import DbSession
from aisupport.core.errors import AppError, ProblemAnswer, Unauthorized, answers
from aisupport.core.ratelimit import RATE_LIMITED
from aisupport.core.security import InvalidToken, sha256_hex
from aisupport.core.tenancy import set_tenant
from aisupport.organizations import audit
from aisupport.organizations import repository as org_repository
from aisupport.organizations.audit import Actor
from aisupport.organizations.models import Role
from aisupport.organizations.permissions import Permission, permissions_of

log = structlog.get_logger("aisupport.auth")

API_KEY_LAST_USED_PRECISION = timedelta(minutes=1)  # last_used_at is written at most once a minute

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = ProblemAnswer(
    403,
    f"a cookie-authenticated request without a matching `{CSRF_HEADER}`, or from an origin not allowed",
    methods=frozenset({"POST", "PUT", "PATCH", "DELETE"}),
)


class BearerToken(OAuth2PasswordBearer):
    """The `Authorization: Bearer` token, or None without the header; any other header is a bad token.

    Declared as OAuth2 password flow in OpenAPI, so Swagger's Authorize button signs in via /auth/token.
    """

    async def __call__(self, request: HTTPConnection) -> str | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip(" \t")
        if scheme.lower() != "bearer" or not token:
            raise invalid_access_token()
        return token


bearer_scheme = BearerToken(tokenUrl="/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An organization API key (sk_...)."
)


@answers(RATE_LIMITED)  # the rate limiter is reached through these components only
async def auth_components(request: Request) -> AuthComponents:
    components: AuthComponents = request.app.state.auth
    return components


Auth = Annotated[AuthComponents, Depends(auth_components)]


async def client_of(request: Request) -> Client:
    """The caller's address (the socket's, or a trusted proxy's X-Forwarded-For) and user agent."""
    user_agent = request.headers.get("user-agent")
    return Client(ip=_ip_address(request), user_agent=user_agent[:512] if user_agent else None)


def _ip_address(request: Request) -> str | None:
    # Unix sockets and some test clients give a host that is not an address; it is stored as unknown.
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


ClientInfo = Annotated[Client, Depends(client_of)]


def require_csrf(request: Request, auth: AuthComponents, session_id: uuid.UUID | None) -> None:
    """Cookie-authenticated unsafe requests: allowed Origin (if sent) and X-CSRF-Token = csrf cookie."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    allowed = auth.settings.CORS_ORIGINS
    own_origin = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own_origin and origin not in allowed and "*" not in allowed:
        raise AppError(403, "origin_not_allowed", "Requests from this origin are not allowed.")
    _, _, cookie = request_cookies(request, auth.settings)
    header = request.headers.get(CSRF_HEADER)
    if not header or not cookie or not hmac.compare_digest(header.encode(), cookie.encode()):
        raise AppError(403, "csrf_failed", f"The {CSRF_HEADER} header must equal the csrf_token cookie.")
    if session_id is not None and not auth.csrf_token_matches(session_id, header):
        raise AppError(403, "csrf_failed", f"The {CSRF_HEADER} header must equal the csrf_token cookie.")


@answers(CSRF_REFUSED)
async def current_principal(
    request: Request,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
    bearer_token: Annotated[str | None, Depends(bearer_scheme)],
    api_key_header: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Authenticate the request, resolve the organization it acts in, scope its transaction to that
    organization, and resolve the effective role, read from the membership on every request.

    A person acts in the organization of the path (`/orgs/{org_id}/...`), or else in the token's own
    organization, with their current role there; the token's role claim caps it only in the token's
    own organization. An API key acts only in its own organization.
    """
    path_org = _path_organization(request)
    if api_key_header is not None or (bearer_token or "").startswith(API_KEY_PREFIX + "_"):
        principal = await _api_key_principal(db, auth, client, api_key_header or bearer_token or "")
        if path_org is not None and path_org != principal.organization_id:
            raise organization_not_found()
        return principal
    token = bearer_token
    via: Literal["bearer", "cookie"] = "bearer"
    if token is None:
        token, _, _ = request_cookies(request, auth.settings)
        via = "cookie"
    if not token:
        raise Unauthorized()
    try:
        claims = auth.access_tokens.decode(token)
        token_role = Role(claims.role)
    except (InvalidToken, ValueError):
        raise invalid_access_token() from None
    if via == "cookie":
        require_csrf(request, auth, claims.session_id)
    if not await service.session_is_live(db, auth, claims.session_id):
        raise invalid_access_token()
    organization_id = path_org or claims.organization_id
    # The tenant is set once, to the organization acted in; the membership read below is allowed by
    # row-level security either way (current organization, or the user's own row), and a non-member
    # is refused before anything else is read.
    await set_tenant(db, organization_id=organization_id, user_id=claims.user_id)
    member_role = await org_repository.role_of(db, claims.user_id, organization_id)
    if organization_id != claims.organization_id:
        if member_role is None:
            raise organization_not_found()
        role = member_role
    elif member_role is None:  # removed from the token's organization since the token was issued
        raise invalid_access_token()
    else:
        role = token_role.at_most(member_role)
    return Principal(
        organization_id=organization_id,
        role=role,
        via=via,
        user_id=claims.user_id,
        session_id=claims.session_id,
    )


def _path_organization(request: Request) -> uuid.UUID | None:
    """The organization named by the path (`/orgs/{org_id}/...`), if any; a malformed id is not found."""
    value = request.path_params.get("org_id")
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise organization_not_found() from None


def organization_not_found() -> AppError:
    return AppError(404, "organization_not_found", "No such organization.")


async def _api_key_principal(db: DbSession, auth: AuthComponents, client: Client, secret: str) -> Principal:
    key_hash = sha256_hex(secret)
    organization_id = await org_repository.organization_of_api_key(db, key_hash)
    if organization_id is None:
        raise invalid_api_key()
    await set_tenant(db, organization_id=organization_id, user_id=None)
    found = await org_repository.api_key_by_hash(db, organization_id, key_hash)
    now = datetime.now(UTC)
    if found is None:
        raise invalid_api_key()
    key, creator_role = found
    if key.expires_at is not None and key.expires_at <= now:
        raise invalid_api_key()
    # Before the revoked check: a leaked, revoked key cannot flood the append-only audit log.
    await auth.rate_limiter.hit(auth.settings.rate_limits["api_key"], "api-key", str(key.id))
    if key.revoked_at is not None:
        await audit.record(
            db,
            organization_id,
            "api_key.revoked_used",
            actor=Actor(),
            client=client,
            target=("api_key", key.id),
        )
        log.warning("security.revoked_api_key_used", api_key_id=str(key.id), ip=client.ip)
        raise invalid_api_key(keep_changes=True)
    # A key works only while its creator could still create it, and never above their current role
    # (docs/permissions.md, decision 0025): removing or demoting a member disarms their keys at once.
    if creator_role is None or Permission.API_KEYS_MANAGE not in permissions_of(creator_role):
        log.info("api_key_creator_lacks_standing", api_key_id=str(key.id))
        raise invalid_api_key()
    if key.last_used_at is None or now - key.last_used_at > API_KEY_LAST_USED_PRECISION:
        await org_repository.touch_api_key(db, organization_id, key.id, now)
    return Principal(
        organization_id=organization_id,
        role=Role(key.role).at_most(creator_role),
        via="api_key",
        api_key_id=key.id,
    )


def invalid_api_key(*, keep_changes: bool = False) -> Unauthorized:
    return Unauthorized(
        "invalid_api_key", "The API key is invalid, expired or revoked.", keep_changes=keep_changes
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def requires(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only if the caller holds `permission`.

    On routes under /orgs/{org_id}, the principal is already the caller's standing in that organization
    (current_principal): a person's membership there, or an API key of that organization; anything else
    was answered 404, as if the organization did not exist.
    """

    async def check(principal: CurrentPrincipal) -> Principal:
        if permission not in principal.permissions:
            raise AppError(403, "forbidden", f"Your role does not allow this ({permission}).")
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # read by the route-coverage test
    return check


# A signed-in person acting on their own account (API keys never hold this permission).
Account = Annotated[Principal, Depends(requires(Permission.ACCOUNT))]
