"""An inbox's identity-verification secret: an HMAC key the organization's server signs a visitor's
identity with, so the widget API must read it back: sealed (core/sealing.py) and bound to its inbox
(the organization and inbox ids). Shown once, at creation and on rotation; never returned otherwise,
never logged."""

from __future__ import annotations

import uuid

from aisupport.core import sealing
from aisupport.core.config import Settings
from aisupport.core.sealing import SecretUnreadable
from aisupport.core.security import new_opaque_token

PREFIX = "ivs"  # identity-verification secret
PURPOSE = "inbox-identity-secret"

__all__ = ["SecretUnreadable", "new_secret", "seal", "unseal"]


def new_secret() -> str:
    return new_opaque_token(PREFIX)


def seal(settings: Settings, secret: str, *, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> bytes:
    """The secret encrypted for storage in the inbox's row."""
    return sealing.seal(settings, secret, purpose=PURPOSE, bound_to=organization_id.bytes + inbox_id.bytes)


def unseal(settings: Settings, sealed: bytes, *, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> str:
    """The secret, for verifying a visitor's signed identity."""
    return sealing.unseal(settings, sealed, purpose=PURPOSE, bound_to=organization_id.bytes + inbox_id.bytes)
