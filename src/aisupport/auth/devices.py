"""Device tokens: OWASP's "Slow Down Online Guessing Attacks with Device Cookies".

A client that signed in successfully gets a device token (a cookie, or in the body for body-transport
clients). Presented at the next login for the same account, it earns that device its own failure
counter, so strangers guessing at the address (who share the account-wide counter) cannot lock the
owner out. Stateless: `dt_` + base64url(nonce, expiry, HMAC). The MAC binds the token to the user id
and to the current password hash, so a password change or reset makes every device untrusted again;
the user id is not readable from the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence

DEVICE_TOKEN_PREFIX = "dt"
DEVICE_TOKEN_MAX_LENGTH = 128
_NONCE_BYTES = 16
_EXPIRY_BYTES = 8
_MAC_BYTES = 32
_RAW_BYTES = _NONCE_BYTES + _EXPIRY_BYTES + _MAC_BYTES


def device_binding(user_id: uuid.UUID, password_hash: str) -> bytes:
    """What a device token is bound to: the user, and the password they proved they knew."""
    return user_id.bytes + hashlib.sha256(b"device-binding/" + password_hash.encode()).digest()


def issue_device_token(key: bytes, binding: bytes, expires_at: int) -> str:
    """A new device token for `binding`, valid until `expires_at` (Unix seconds)."""
    head = secrets.token_bytes(_NONCE_BYTES) + expires_at.to_bytes(_EXPIRY_BYTES, "big")
    raw = head + _mac(key, head, binding)
    return f"{DEVICE_TOKEN_PREFIX}_{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def trusted_device(keys: Sequence[bytes], token: str, binding: bytes, now: int) -> str | None:
    """The device's id (its nonce, hex) if `token` is an unexpired device token for `binding` signed
    with one of `keys`; None for anything else, malformed input included."""
    prefix, _, encoded = token.partition("_")
    if prefix != DEVICE_TOKEN_PREFIX or len(token) > DEVICE_TOKEN_MAX_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _RAW_BYTES:
        return None
    head, mac = raw[: _NONCE_BYTES + _EXPIRY_BYTES], raw[_NONCE_BYTES + _EXPIRY_BYTES :]
    if not any(hmac.compare_digest(mac, _mac(key, head, binding)) for key in keys):
        return None
    if int.from_bytes(head[_NONCE_BYTES:], "big") <= now:
        return None
    return head[:_NONCE_BYTES].hex()


def _mac(key: bytes, head: bytes, binding: bytes) -> bytes:
    return hmac.new(key, b"device/" + head + binding, hashlib.sha256).digest()
