"""Secrets the service must read back (an inbox's identity secret, a webhook endpoint's signing
secret), sealed for storage with AES-GCM under a key derived from SECRET_KEY for one `purpose`, bound to
the row that holds them (`bound_to`, the associated data: a sealed value copied to another row does not
open). SECRET_KEY_PREVIOUS still opens what was sealed before a rotation."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aisupport.core.config import Settings
from aisupport.core.security import derive_key

FORMAT = b"\x01"  # the layout below: format, 12-byte nonce, ciphertext with its 16-byte tag
NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """Neither SECRET_KEY nor SECRET_KEY_PREVIOUS opens the sealed value."""


def _keys(settings: Settings, purpose: str) -> list[bytes]:
    secrets = [settings.SECRET_KEY, settings.SECRET_KEY_PREVIOUS]
    return [derive_key(secret, purpose)[:32] for secret in secrets if secret]  # AES-256


def seal(settings: Settings, secret: str, *, purpose: str, bound_to: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_keys(settings, purpose)[0]).encrypt(nonce, secret.encode(), FORMAT + bound_to)
    return FORMAT + nonce + sealed


def unseal(settings: Settings, sealed: bytes, *, purpose: str, bound_to: bytes) -> str:
    if sealed[:1] != FORMAT:
        raise SecretUnreadable
    nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    for key in _keys(settings, purpose):
        try:
            plain = AESGCM(key).decrypt(nonce, ciphertext, FORMAT + bound_to)
        except InvalidTag:
            continue
        return plain.decode()
    raise SecretUnreadable
