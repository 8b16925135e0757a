"""Is this session revoked? Asked on every authenticated request, so it is answered from a cache.

With Redis, revocations are written there once committed, so every replica sees them at once and a
cached "live" answer lasts at most SESSION_CACHE_TTL_SECONDS. Without Redis, the cache is in
process: the replica that revoked knows at once, others within the TTL.
"""

from __future__ import annotations

import uuid

import structlog
from cachetools import TTLCache
from redis.asyncio import Redis

log = structlog.get_logger("aisupport.access")

LIVE = b"live"
REVOKED = b"revoked"


class SessionStatusCache:
    def __init__(self, redis: Redis | None, *, key_prefix: str, live_ttl: float, revoked_ttl: int) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}:session:"
        self._live_ttl = live_ttl
        self._revoked_ttl = revoked_ttl
        self._memory: TTLCache[uuid.UUID, bytes] = TTLCache(maxsize=100_000, ttl=live_ttl or 0.001)

    async def get(self, session_id: uuid.UUID) -> bool | None:
        """True if live, False if revoked, None if unknown (ask the database)."""
        value: bytes | str | None
        if self._redis is None:
            value = self._memory.get(session_id)
        else:
            try:
                value = await self._redis.get(self._prefix + str(session_id))
            except Exception as exc:
                log.warning("session_cache_unavailable", reason=type(exc).__name__)
                return None
        return None if value is None else value == LIVE

    async def put(self, session_id: uuid.UUID, *, live: bool) -> None:
        value = LIVE if live else REVOKED
        if self._redis is None:
            self._memory[session_id] = value
            return
        ttl = self._live_ttl if live else self._revoked_ttl
        if ttl <= 0:
            return
        try:
            await self._redis.set(self._prefix + str(session_id), value, px=int(ttl * 1000))
        except Exception as exc:
            log.warning("session_cache_unavailable", reason=type(exc).__name__)
