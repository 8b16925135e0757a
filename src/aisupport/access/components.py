"""What authenticating a request needs besides the database, built once per app."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from functools import cached_property

from aisupport.access.cache import Principals
from aisupport.core.config import Settings
from aisupport.core.ratelimit import RateLimiter
from aisupport.core.security import AccessTokenCodec, derive_key


@dataclass(frozen=True)
class AccessComponents:
    settings: Settings
    access_tokens: AccessTokenCodec
    rate_limiter: RateLimiter
    principals: Principals

    @cached_property
    def secrets(self) -> tuple[str, ...]:
        """The current secret first, then the previous one during a key rollover."""
        previous = self.settings.SECRET_KEY_PREVIOUS
        return (self.settings.SECRET_KEY, *((previous,) if previous else ()))

    @cached_property
    def _csrf_keys(self) -> tuple[bytes, ...]:
        return tuple(derive_key(secret, "csrf") for secret in self.secrets)

    def csrf_token(self, session_id: uuid.UUID) -> str:
        """The CSRF token bound to a session (signed double-submit)."""
        return _session_mac(self._csrf_keys[0], session_id)

    def csrf_token_matches(self, session_id: uuid.UUID, value: str) -> bool:
        expected = (_session_mac(key, session_id) for key in self._csrf_keys)
        return any(hmac.compare_digest(value.encode(), candidate.encode()) for candidate in expected)


def _session_mac(key: bytes, session_id: uuid.UUID) -> str:
    return hmac.new(key, session_id.bytes, "sha256").hexdigest()
