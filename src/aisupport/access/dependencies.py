"""Who is calling: the access token from `Authorization: Bearer` (preferred) or the cookie."""

from __future__ import annotations

import hmac
import ipaddress
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from aisupport.access import repository
from aisupport.access.cache import Snapshot
from aisupport.access.components import AccessComponents
from aisupport.access.cookies import request_cookies
from aisupport.access.errors import (
    CSRF_HEADER,
    CSRF_REFUSED,
    csrf_failed,
    invalid_access_token,
    invalid_api_key,
    organization_not_found,
    origin_not_allowed,
    role_does_not_allow,
)
from aisupport.access.permissions import Permission, Role, permissions_of
from aisupport.access.principal import API_KEY_PREFIX, Principal
from aisupport.audit import service as audit
from aisupport.audit.service import Actor
from aisupport.core.client import Client
from aisupport.core.errors import Unauthorized, answers
from aisupport.core.ratelimit import RATE_LIMITED
from aisupport.core.security import InvalidToken, sha256_hex
from aisupport.core.tenancy import bind_request_tenant, tenant_session

log = structlog.get_logger("aisupport.access")

API_KEY_LAST_USED_PRECISION = timedelta(minutes=1)  # last_used_at is written at most once a minute

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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
async def access_components(request: Request) -> AccessComponents:
    components: AccessComponents = request.app.state.auth
    return components


Access = Annotated[AccessComponents, Depends(access_components)]


def client_from(request: Request) -> Client:
    """The caller's address (the socket's, or a trusted proxy's X-Forwarded-For) and user agent."""
    user_agent = request.headers.get("user-agent")
    return Client(ip=_ip_address(request), user_agent=user_agent[:512] if user_agent else None)


async def client_of(request: Request) -> Client:
    return client_from(request)


def _ip_address(request: Request) -> str | None:
    # Unix sockets and some test clients give a host that is not an address; it is stored as unknown.
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


ClientInfo = Annotated[Client, Depends(client_of)]


def require_csrf(request: Request, access: AccessComponents, session_id: uuid.UUID | None) -> None:
    """Cookie-authenticated unsafe requests: allowed Origin (if sent) and X-CSRF-Token = csrf cookie."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    allowed = access.settings.CORS_ORIGINS
    own_origin = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own_origin and origin not in allowed and "*" not in allowed:
        raise origin_not_allowed()
    _, _, cookie = request_cookies(request, access.settings)
    header = request.headers.get(CSRF_HEADER)
    if not header or not cookie or not hmac.compare_digest(header.encode(), cookie.encode()):
        raise csrf_failed()
    if session_id is not None and not access.csrf_token_matches(session_id, header):
        raise csrf_failed()


async def current_principal(
    request: Request, bearer_token: str | None, api_key_header: str | None
) -> Principal:
    """Authenticate the request, resolve the organization it acts in and the effective role, and name
    that organization as the tenant of the request's database session.

    A person acts in the organization of the path (`/orgs/{org_id}/...`), or else in the token's own
    organization, with their current role there; the token's role claim caps it only in the token's
    own organization. An API key acts only in its own organization. Resolved principals are kept for
    SESSION_CACHE_TTL_SECONDS (access/cache.py); a miss costs one round trip to the database.
    """
    # Read here rather than through dependencies: every authenticated request passes this way.
    access: AccessComponents = request.app.state.auth
    path_org = _path_organization(request)
    if api_key_header is not None or (bearer_token or "").startswith(API_KEY_PREFIX + "_"):
        secret = api_key_header or bearer_token or ""
        snapshot = await _api_key_snapshot(request, access, client_from(request), secret)
        if path_org is not None and path_org != snapshot.principal.organization_id:
            raise organization_not_found()
    else:
        snapshot = await _session_snapshot(request, access, bearer_token, path_org)
    principal = snapshot.principal
    request.state.snapshot = snapshot
    bind_request_tenant(request.state, organization_id=principal.organization_id, user_id=principal.user_id)
    return principal


async def _session_snapshot(
    request: Request, access: AccessComponents, bearer_token: str | None, path_org: uuid.UUID | None
) -> Snapshot:
    token = bearer_token
    via: Literal["bearer", "cookie"] = "bearer"
    if token is None:
        token, _, _ = request_cookies(request, access.settings)
        via = "cookie"
    if not token:
        raise Unauthorized()
    # Keyed by the token itself: a token's signature and claims never change, so a snapshot skips
    # decoding it again; only its expiry is checked on every use.
    key = ("token", token, path_org, via)
    snapshot = access.principals.cache.get(key)
    if snapshot is None:
        snapshot = await access.principals.cache.resolve(
            key, lambda: _session_principal(request, access, token, via, path_org)
        )
    if snapshot.extras["expires_at"] <= time.time():
        raise invalid_access_token()
    if via == "cookie":
        require_csrf(request, access, snapshot.principal.session_id)
    return snapshot


async def _session_principal(
    request: Request,
    access: AccessComponents,
    token: str,
    via: Literal["bearer", "cookie"],
    path_org: uuid.UUID | None,
) -> tuple[Principal, dict[str, Any]]:
    try:
        claims = access.access_tokens.decode(token)
        token_role = Role(claims.role)
    except (InvalidToken, ValueError):
        raise invalid_access_token() from None
    if via == "cookie":
        require_csrf(request, access, claims.session_id)
    organization_id = path_org or claims.organization_id
    standing = await repository.session_standing(
        request.app.state.engine, claims.session_id, claims.user_id, organization_id
    )
    if not standing.live:
        raise invalid_access_token()
    if organization_id != claims.organization_id:
        if standing.role is None:
            raise organization_not_found()
        role = standing.role
    elif standing.role is None:  # removed from the token's organization since the token was issued
        raise invalid_access_token()
    else:
        role = token_role.at_most(standing.role)
    principal = Principal.member(
        organization_id, role, user_id=claims.user_id, session_id=claims.session_id, via=via
    )
    return principal, {"expires_at": claims.expires_at.timestamp()}


def _path_organization(request: Request) -> uuid.UUID | None:
    """The organization named by the path (`/orgs/{org_id}/...`), if any; a malformed id is not found."""
    value = request.path_params.get("org_id")
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise organization_not_found() from None


async def _api_key_snapshot(
    request: Request, access: AccessComponents, client: Client, secret: str
) -> Snapshot:
    key_hash = sha256_hex(secret)
    cache_key = ("api_key", key_hash)
    snapshot = access.principals.cache.get(cache_key)
    if snapshot is None:

        async def resolve() -> tuple[Principal, dict[str, Any]]:
            key = await repository.api_key_standing(request.app.state.engine, key_hash)
            if key is None:
                raise invalid_api_key()
            principal = await _api_key_principal(request, access, client, key)
            return principal, {"expires_at": key.expires_at, "last_used_at": key.last_used_at}

        snapshot = await access.principals.cache.resolve(cache_key, resolve)
    principal = snapshot.principal
    now = datetime.now(UTC)
    expires_at: datetime | None = snapshot.extras.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise invalid_api_key()
    await access.rate_limiter.hit(
        access.settings.rate_limits["api_key"], "api-key", str(principal.api_key_id)
    )
    last_used_at: datetime | None = snapshot.extras.get("last_used_at")
    if principal.api_key_id is not None and (
        last_used_at is None or now - last_used_at > API_KEY_LAST_USED_PRECISION
    ):
        snapshot.extras["last_used_at"] = now
        sessions = request.app.state.sessionmaker
        async with tenant_session(sessions, organization_id=principal.organization_id) as db:
            await repository.touch_api_key(db, principal.organization_id, principal.api_key_id, now)
    return snapshot


async def _api_key_principal(
    request: Request, access: AccessComponents, client: Client, key: repository.ApiKeyStanding
) -> Principal:
    """The principal of a key found by its secret, or the error that refuses it."""
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise invalid_api_key()
    if key.revoked_at is not None:
        # Rate-limited first: a leaked, revoked key cannot flood the append-only audit log.
        await access.rate_limiter.hit(access.settings.rate_limits["api_key"], "api-key", str(key.id))
        sessions = request.app.state.sessionmaker
        async with tenant_session(sessions, organization_id=key.organization_id) as db:
            target = ("api_key", key.id)
            await audit.record(
                db, key.organization_id, "api_key.revoked_used", actor=Actor(), client=client, target=target
            )
        log.warning("security.revoked_api_key_used", api_key_id=str(key.id), ip=client.ip)
        raise invalid_api_key()
    # A key works only while its creator could still create it, and never above their current role
    # (docs/permissions.md, decision 0025): removing or demoting a member disarms their keys at once.
    if key.creator_role is None or Permission.API_KEYS_MANAGE not in permissions_of(key.creator_role):
        log.info("api_key_creator_lacks_standing", api_key_id=str(key.id))
        raise invalid_api_key()
    return Principal.api_key(key.organization_id, key.role.at_most(key.creator_role), api_key_id=key.id)


def requires(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only if the caller holds `permission`.

    On routes under /orgs/{org_id}, the principal is the caller's standing in that organization
    (current_principal): a person's membership there, or an API key of that organization; anything else
    is answered 404, as if the organization did not exist. 429: the API-key limit, counted on every
    request of a key.
    """

    # Authenticates itself rather than through a `current_principal` sub-dependency: one dependency
    # less to solve on every authenticated request.
    @answers(CSRF_REFUSED, RATE_LIMITED)
    async def check(
        request: Request,
        bearer_token: Annotated[str | None, Depends(bearer_scheme)],
        api_key_header: Annotated[str | None, Depends(api_key_scheme)],
    ) -> Principal:
        principal = await current_principal(request, bearer_token, api_key_header)
        if permission not in principal.permissions:
            raise role_does_not_allow(permission)
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # read by the route-coverage test
    return check


async def principal_again(request: Request, permission: Permission) -> Principal:
    """The caller of a long-lived request (a stream) resolved again, as on a new request: an error if
    their session, key or membership is gone or no longer holds `permission`. Within the principal
    cache's lifetime (or at once when it is evicted), a revocation shows here."""
    bearer_token = await bearer_scheme(request)
    api_key_header = await api_key_scheme(request)
    principal = await current_principal(request, bearer_token, api_key_header)
    if permission not in principal.permissions:
        raise role_does_not_allow(permission)
    return principal


# A signed-in person acting on their own account (API keys never hold this permission).
Account = Annotated[Principal, Depends(requires(Permission.ACCOUNT))]
