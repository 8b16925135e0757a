"""Abuse limits with `limits`: counters in Redis when configured, else in process.

If Redis fails mid-flight, counting falls back to process memory (logged once per outage) and Redis
is tried again after a pause; a limit is never silently lifted.
"""

from __future__ import annotations

import hashlib
import math
import time

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from aisupport.core.errors import AppError, ProblemAnswer
from aisupport.core.metrics import RATE_LIMIT_FALLBACK, RATE_LIMIT_REJECTIONS
from aisupport.core.redis import REDIS_TIMEOUT_SECONDS

log = structlog.get_logger("aisupport.ratelimit")

REDIS_RETRY_SECONDS = 5.0
RATE_LIMITED = ProblemAnswer(429, "too many requests; try again after `Retry-After` seconds")


class RateLimited(AppError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"Too many requests. Try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )


def limit_key(value: str) -> str:
    """Identifiers such as emails are hashed before they become counter keys."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class RateLimiter:
    def __init__(self, redis_url: str | None, key_prefix: str) -> None:
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._redis: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            storage = RedisStorage(
                redis_url,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._redis = SlidingWindowCounterRateLimiter(storage)
        self._redis_retry_at = 0.0
        self._prefix = key_prefix

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "memory"

    @property
    def degraded(self) -> bool:
        return self._redis is not None and time.monotonic() < self._redis_retry_at

    async def hit(self, item: RateLimitItem, *identifiers: str) -> None:
        """Count one request against `item`; raises RateLimited (429) when the limit is exceeded."""
        limiter = self._memory
        if self._redis is not None and not self.degraded:
            try:
                allowed = await self._redis.hit(item, self._prefix, *identifiers)
                RATE_LIMIT_FALLBACK.set(0)
                if allowed:
                    return
                stats = await self._redis.get_window_stats(item, self._prefix, *identifiers)
                raise _rejected(identifiers, stats.reset_time)
            except RateLimited:
                raise
            except Exception as exc:
                log.warning(
                    "rate_limit_fallback_to_memory",
                    reason=type(exc).__name__,
                    retry_redis_in_seconds=REDIS_RETRY_SECONDS,
                )
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
        if self._redis is not None:
            RATE_LIMIT_FALLBACK.set(1)
        if not await limiter.hit(item, self._prefix, *identifiers):
            stats = await limiter.get_window_stats(item, self._prefix, *identifiers)
            raise _rejected(identifiers, stats.reset_time)


def _rejected(identifiers: tuple[str, ...], reset_time: float) -> RateLimited:
    # The first identifier names the limit ("login-ip", "api-key", ...).
    RATE_LIMIT_REJECTIONS.labels(identifiers[0].replace("-", "_")).inc()
    return RateLimited(_retry_after(reset_time))


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))
