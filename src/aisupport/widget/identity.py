"""Proofs of a visitor's identity, both signed by the organization's own server with the inbox's
identity secret (docs/widget.md):

- an identity token: a short-lived HS256 JWT whose `external_id` (or `sub`) is the customer's id in the
  organization's own system, with optional `email` and `name`, all signed; `exp` is required and at
  most WIDGET_IDENTITY_TOKEN_MAX_SECONDS after `iat`;
- `identity_hash`: the hex HMAC-SHA256 of the `external_id` under the secret (what Chatwoot's and Help
  Scout's integrations send); only the `external_id` is signed then.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import jwt

from aisupport.widget import errors

LEEWAY_SECONDS = 30  # clocks of two servers


@dataclass(frozen=True)
class Identity:
    external_id: str
    email: str | None
    name: str | None


def from_identity_token(secret: str, token: str, *, max_seconds: int) -> Identity:
    """The identity an identity token signs; 403 for one not signed with `secret`, expired, too
    long-lived, or without an `external_id`."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "iat"]}, leeway=LEEWAY_SECONDS
        )
    except jwt.PyJWTError:
        raise errors.identity_not_proven("the identity token is not valid or has expired") from None
    if not isinstance(claims["exp"], int | float) or not isinstance(claims["iat"], int | float):
        raise errors.identity_not_proven("the identity token's times are not numbers")
    if claims["exp"] - claims["iat"] > max_seconds:
        raise errors.identity_not_proven(f"an identity token may live at most {max_seconds} seconds")
    external_id = claims.get("external_id", claims.get("sub"))
    email, name = claims.get("email"), claims.get("name")
    if not isinstance(external_id, str) or not _text(external_id, 255):
        raise errors.identity_not_proven("the identity token needs an `external_id` (or `sub`), as text")
    if not _optional_text(email, 320) or not _optional_text(name, 200):
        raise errors.identity_not_proven("the identity token's `email` and `name` must be text")
    return Identity(external_id, email, name)


def from_identity_hash(secret: str, external_id: str, identity_hash: str) -> bool:
    """Whether `identity_hash` is the HMAC-SHA256 of `external_id` under `secret` (compared in constant
    time)."""
    expected = hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, identity_hash.lower())


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _optional_text(value: object, limit: int) -> bool:
    return value is None or _text(value, limit)
