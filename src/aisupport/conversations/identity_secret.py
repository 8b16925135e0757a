"""An inbox's identity-verification secret: an HMAC key the organization's server signs a visitor's
identity with, so the widget API (a later issue) must read it back. Stored sealed with AES-GCM under a
key derived from SECRET_KEY (`derive_key(..., "inbox-identity-secret")`), bound to its inbox (the
organization and inbox ids are the associated data: a sealed value copied to another row does not
open). Shown once, at creation and on rotation; never returned otherwise, never logged."""

from __future__ import annotations

import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aisupport.core.config import Settings
from aisupport.core.security import derive_key, new_opaque_token

PREFIX = "ivs"  # identity-verification secret
PURPOSE = "inbox-identity-secret"
FORMAT = b"\x01"  # the layout below: format, 12-byte nonce, ciphertext with its 16-byte tag
NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """Neither SECRET_KEY nor SECRET_KEY_PREVIOUS opens the sealed value."""


def new_secret() -> str:
    return new_opaque_token(PREFIX)


def _keys(settings: Settings) -> list[bytes]:
    secrets = [settings.SECRET_KEY, settings.SECRET_KEY_PREVIOUS]
    return [derive_key(secret, PURPOSE)[:32] for secret in secrets if secret]  # AES-256


def _bound_to(organization_id: uuid.UUID, inbox_id: uuid.UUID) -> bytes:
    return FORMAT + organization_id.bytes + inbox_id.bytes


def seal(settings: Settings, secret: str, *, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> bytes:
    """The secret encrypted for storage in the inbox's row."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_keys(settings)[0]).encrypt(nonce, secret.encode(), _bound_to(organization_id, inbox_id))
    return FORMAT + nonce + sealed


def unseal(settings: Settings, sealed: bytes, *, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> str:
    """The secret, for verifying a visitor's signed identity (the current key, then the previous one,
    so rotating SECRET_KEY does not lose the secrets sealed before)."""
    if sealed[:1] != FORMAT:
        raise SecretUnreadable
    nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    for key in _keys(settings):
        try:
            plain = AESGCM(key).decrypt(nonce, ciphertext, _bound_to(organization_id, inbox_id))
        except InvalidTag:
            continue
        return plain.decode()
    raise SecretUnreadable
