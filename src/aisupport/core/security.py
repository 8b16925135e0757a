"""Keys, password hashing, access tokens (JWT) and opaque secrets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from aisupport.core.config import Settings
from aisupport.core.errors import AppError
from aisupport.core.metrics import PASSWORD_HASH_WAITING

T = TypeVar("T")

ACCESS_TOKEN_TYPE = "access"
ACCESS_TOKEN_HEADER_TYPE = "at+jwt"  # RFC 9068
HASHING_BUSY_RETRY_AFTER_SECONDS = 5


def derive_key(secret: str, purpose: str) -> bytes:
    """A separate key per purpose, so one use of SECRET_KEY never doubles as another."""
    # 64 bytes: long enough for every HMAC algorithm we sign with, HS512 included (RFC 7518 3.2).
    return hmac.new(secret.encode(), b"aisupport/" + purpose.encode(), hashlib.sha512).digest()


def key_id(key: bytes) -> str:
    """A public, stable identifier for a signing key (never reveals the key)."""
    return hashlib.sha256(b"kid/" + key).hexdigest()[:16]


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_opaque_token(prefix: str) -> str:
    """A random secret with a readable prefix: 256 bits from `secrets`."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def derived_opaque_token(prefix: str, key: bytes, parent: str) -> str:
    """A secret computed from another with a server key: the same parent always gives the same child."""
    digest = hmac.new(key, parent.encode(), hashlib.sha256).digest()
    return f"{prefix}_{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


class PasswordHashingBusy(AppError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "password_hashing_busy",
            "Too many sign-ins are in progress. Try again shortly.",
            headers={"Retry-After": str(HASHING_BUSY_RETRY_AFTER_SECONDS)},
        )


class PasswordHasher:
    """argon2id hashing on a small pool of low-priority threads, with a bounded queue.

    Each argon2 computation holds `memory_cost` KiB and a core for a good fraction of a second. The pool
    caps how many run at once (memory), its threads run at the lowest CPU priority so the event loop
    keeps answering other requests during a login storm (latency), and at most `max_waiting` calls
    queue before new ones get 503 with Retry-After (memory and waiting time stay bounded).
    bcrypt hashes (the seed's) still verify and are upgraded to argon2id on the next login.
    """

    def __init__(self, settings: Settings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.ARGON2_TIME_COST,
                    memory_cost=settings.ARGON2_MEMORY_COST_KIB,
                    parallelism=settings.ARGON2_PARALLELISM,
                ),
                BcryptHasher(),
            )
        )
        workers = settings.PASSWORD_HASH_CONCURRENCY or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(workers, "password-hash", initializer=_lowest_cpu_priority)
        self._max_pending = workers + settings.PASSWORD_HASH_MAX_WAITING
        self._pending = 0
        # Verified when the email is unknown, so both failures cost the same.
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(16))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Check `password`; returns (valid, new hash if the stored one should be upgraded)."""
        stored = password_hash or self._dummy_hash
        try:
            valid, updated = await self._run(self._hash.verify_and_update, password, stored)
        except ValueError:  # bcrypt refuses passwords over 72 bytes rather than truncate them
            return False, None
        if password_hash is None:
            return False, None
        return valid, updated

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        if self._pending >= self._max_pending:
            raise PasswordHashingBusy
        self._pending += 1
        PASSWORD_HASH_WAITING.inc()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            self._pending -= 1
            PASSWORD_HASH_WAITING.dec()


def _lowest_cpu_priority() -> None:
    # Linux applies setpriority to a single thread when given its id; elsewhere, or when not
    # permitted, hashing simply keeps the normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    organization_id: uuid.UUID
    role: str
    expires_at: datetime


class InvalidToken(Exception):
    """The token is not an access token we issued and still accept (the reason is not disclosed)."""


class AccessTokenCodec:
    """Signs and verifies access tokens; the previous key keeps verifying during a rollover."""

    def __init__(self, settings: Settings) -> None:
        self._algorithm = settings.JWT_ALG
        self._issuer = settings.JWT_ISSUER
        self._audience = settings.JWT_AUDIENCE
        self._ttl = timedelta(seconds=settings.access_token_ttl_seconds)
        self._signing_key = derive_key(settings.SECRET_KEY, "jwt")
        self._kid = key_id(self._signing_key)
        self._verifying_keys = {self._kid: self._signing_key}
        if settings.SECRET_KEY_PREVIOUS:
            previous = derive_key(settings.SECRET_KEY_PREVIOUS, "jwt")
            self._verifying_keys[key_id(previous)] = previous

    @property
    def ttl_seconds(self) -> int:
        return int(self._ttl.total_seconds())

    def encode(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, organization_id: uuid.UUID, role: str
    ) -> str:
        now = datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "sid": str(session_id),
            "org": str(organization_id),
            "role": role,
            "iat": now,
            "exp": now + self._ttl,
            "iss": self._issuer,
            "aud": self._audience,
            "typ": ACCESS_TOKEN_TYPE,
            "jti": secrets.token_urlsafe(12),
        }
        headers = {"kid": self._kid, "typ": ACCESS_TOKEN_HEADER_TYPE}
        return jwt.encode(payload, self._signing_key, algorithm=self._algorithm, headers=headers)

    def decode(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self._verifying_keys.get(header.get("kid", ""))
            if key is None:
                raise InvalidToken
            payload = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "sid", "org", "role", "iat", "exp", "iss", "aud", "typ"]},
            )
            if payload["typ"] != ACCESS_TOKEN_TYPE or not isinstance(payload["role"], str):
                raise InvalidToken
            return AccessClaims(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                organization_id=uuid.UUID(payload["org"]),
                role=payload["role"],
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError, KeyError) as exc:
            raise InvalidToken from exc
