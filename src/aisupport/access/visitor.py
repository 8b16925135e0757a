"""Who is calling the widget API: a visitor, by the visitor token the widget's session gave them.

A visitor token is a JWT of its own kind: signed with a key derived for it alone (never an access
token's key), `typ` `widget_visitor`, naming the organization, the inbox and the visitor. It is refused
on every member route (the access-token decoder does not know its key or type), and a member's token is
refused here. On every use the visitor's row is read again with its inbox and contact: a visitor
deleted (the contact erased, the inbox deleted), an inbox no longer a widget, or, for a verified
visitor, an identity secret rotated after the token was issued ends the token (decision 0049).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access import repository
from aisupport.access.components import AccessComponents
from aisupport.access.dependencies import bearer_scheme, client_from
from aisupport.access.errors import invalid_visitor_token
from aisupport.access.principal import Principal
from aisupport.core.db import DbSession, request_session
from aisupport.core.errors import answers
from aisupport.core.ratelimit import RATE_LIMITED
from aisupport.core.security import derive_key, key_id
from aisupport.core.tenancy import bind_request_tenant

VISITOR_TOKEN_TYPE = "widget_visitor"
VISITOR_TOKEN_HEADER_TYPE = "vt+jwt"
ALGORITHM = "HS256"
VISITOR = "widget_visitor"  # what the widget's routes declare as their access (access/routes.py)


@dataclass(frozen=True)
class Visitor:
    """A visitor of one widget inbox, as one contact; `verified` if they proved an identity."""

    principal: Principal
    inbox_id: uuid.UUID
    contact_id: uuid.UUID
    verified: bool

    @property
    def organization_id(self) -> uuid.UUID:
        return self.principal.organization_id

    @property
    def id(self) -> uuid.UUID:
        assert self.principal.visitor_id is not None
        return self.principal.visitor_id


@dataclass(frozen=True)
class VisitorClaims:
    organization_id: uuid.UUID
    inbox_id: uuid.UUID
    visitor_id: uuid.UUID
    issued_at: datetime


class VisitorTokens:
    """Signs and verifies visitor tokens; the previous SECRET_KEY keeps verifying during a rollover."""

    def __init__(self, access: AccessComponents) -> None:
        settings = access.settings
        self._issuer = settings.JWT_ISSUER
        self._audience = f"{settings.JWT_AUDIENCE}:widget"
        self.ttl = timedelta(seconds=settings.WIDGET_VISITOR_TOKEN_TTL_SECONDS)
        keys = [derive_key(secret, "widget-visitor-token") for secret in access.secrets]
        self._signing_key = keys[0]
        self._keys = {key_id(key): key for key in keys}

    def issue(
        self, organization_id: uuid.UUID, inbox_id: uuid.UUID, visitor_id: uuid.UUID
    ) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires_at = now + self.ttl
        payload: dict[str, Any] = {
            "sub": str(visitor_id),
            "org": str(organization_id),
            "inbox": str(inbox_id),
            "iat": now,
            "exp": expires_at,
            "iss": self._issuer,
            "aud": self._audience,
            "typ": VISITOR_TOKEN_TYPE,
            "jti": secrets.token_urlsafe(12),
        }
        headers = {"kid": key_id(self._signing_key), "typ": VISITOR_TOKEN_HEADER_TYPE}
        return jwt.encode(payload, self._signing_key, algorithm=ALGORITHM, headers=headers), expires_at

    def decode(self, token: str) -> VisitorClaims | None:
        """The claims of a visitor token we issued and still accept, else None (no reason given)."""
        try:
            key = self._keys.get(jwt.get_unverified_header(token).get("kid", ""))
            if key is None:
                return None
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "org", "inbox", "iat", "exp", "iss", "aud", "typ"]},
            )
            if payload["typ"] != VISITOR_TOKEN_TYPE:
                return None
            return VisitorClaims(
                organization_id=uuid.UUID(payload["org"]),
                inbox_id=uuid.UUID(payload["inbox"]),
                visitor_id=uuid.UUID(payload["sub"]),
                issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError, KeyError):
            return None


def visitor_tokens(request: Request) -> VisitorTokens:
    tokens: VisitorTokens | None = getattr(request.app.state, "visitor_tokens", None)
    if tokens is None:
        tokens = request.app.state.visitor_tokens = VisitorTokens(request.app.state.auth)
    return tokens


async def hit_widget_ip_limit(request: Request) -> None:
    """The widget's limit per client address, counted on every widget request."""
    access: AccessComponents = request.app.state.auth
    client = client_from(request)
    await access.rate_limiter.hit(
        access.settings.rate_limits["widget_ip"], "widget-ip", client.ip or "unknown"
    )


@answers(RATE_LIMITED)
async def current_visitor(
    request: Request, db: DbSession, token: Annotated[str | None, Depends(bearer_scheme)]
) -> Visitor:
    """The visitor named by `Authorization: Bearer <visitor token>`, in the inbox of the path; their
    organization becomes the tenant of the request's session. 401 for anything else; 429 past the
    limits per address and per visitor."""
    await hit_widget_ip_limit(request)
    claims = visitor_tokens(request).decode(token) if token else None
    if claims is None or str(claims.inbox_id) != request.path_params.get("inbox_id"):
        raise invalid_visitor_token()
    access: AccessComponents = request.app.state.auth
    limits = access.settings.rate_limits
    await access.rate_limiter.hit(limits["widget_visitor"], "widget-visitor", str(claims.visitor_id))
    bind_request_tenant(request.state, organization_id=claims.organization_id, user_id=None)
    visitor = await _standing(db, claims)
    if visitor is None:
        raise invalid_visitor_token()
    request.state.visitor_claims = claims
    return visitor


async def visitor_again(request: Request) -> Visitor | None:
    """The caller of a long-lived request (a stream) resolved again: None if their visitor is gone
    (erased, the inbox deleted or no longer a widget, the identity secret rotated)."""
    claims: VisitorClaims = request.state.visitor_claims
    async with request_session(request) as db:
        return await _standing(db, claims)


async def _standing(db: AsyncSession, claims: VisitorClaims) -> Visitor | None:
    row = await repository.visitor_standing(db, claims.organization_id, claims.visitor_id, claims.inbox_id)
    if (
        row is None
        or row.inbox_kind != "widget"
        or row.contact_erased_at is not None
        or (row.verified and _rotated_since(row.identity_secret_rotated_at, claims.issued_at))
    ):
        return None
    principal = Principal.widget_visitor(claims.organization_id, visitor_id=claims.visitor_id)
    return Visitor(principal, claims.inbox_id, row.contact_id, row.verified)


def _rotated_since(rotated_at: datetime | None, issued_at: datetime) -> bool:
    """Whether the identity secret was rotated after the token was issued (`iat` is in whole seconds: a
    rotation within the token's second counts as before it)."""
    return rotated_at is not None and rotated_at - timedelta(seconds=1) >= issued_at


current_visitor.access = VISITOR  # type: ignore[attr-defined]  # read by the route walks
CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]
