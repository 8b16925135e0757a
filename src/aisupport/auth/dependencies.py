"""Who is calling: the access token from `Authorization: Bearer` (preferred) or the cookie."""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from aisupport.auth import service
from aisupport.auth.cookies import request_cookies
from aisupport.auth.service import AuthComponents, Client
from aisupport.core.db import DbSession
from aisupport.core.errors import AppError, Unauthorized
from aisupport.core.security import InvalidToken
from aisupport.organizations.models import Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "X-CSRF-Token"


def invalid_access_token() -> Unauthorized:
    # One answer for every kind of bad token, so a caller learns nothing from the difference.
    return Unauthorized("invalid_token", "The access token is invalid, expired or revoked.")


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


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    session_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    via: Literal["bearer", "cookie"]


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


async def current_principal(
    request: Request,
    db: DbSession,
    auth: Auth,
    bearer_token: Annotated[str | None, Depends(bearer_scheme)],
) -> Principal:
    token = bearer_token
    via: Literal["bearer", "cookie"] = "bearer"
    if token is None:
        token, _, _ = request_cookies(request, auth.settings)
        via = "cookie"
    if not token:
        raise Unauthorized()
    try:
        claims = auth.access_tokens.decode(token)
        role = Role(claims.role)
    except (InvalidToken, ValueError):
        raise invalid_access_token() from None
    if via == "cookie":
        require_csrf(request, auth, claims.session_id)
    if not await service.session_is_live(db, auth, claims.session_id):
        raise invalid_access_token()
    return Principal(
        user_id=claims.user_id,
        session_id=claims.session_id,
        organization_id=claims.organization_id,
        role=role,
        via=via,
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
