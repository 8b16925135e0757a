"""The shared Redis client (rate-limit counters, session cache), when REDIS_URL is set."""

from __future__ import annotations

from redis.asyncio import Redis

# Short timeouts: a stalled Redis must degrade to the in-process fallbacks, not stall requests.
REDIS_TIMEOUT_SECONDS = 0.5


def create_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
    )
