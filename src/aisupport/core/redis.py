"""The shared Redis clients (rate-limit counters, broadcasts), when REDIS_URL is set."""

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


# A subscriber waits for messages as long as none come; its connection is checked by a PING this often.
SUBSCRIBER_HEALTH_CHECK_SECONDS = 5


def create_subscriber(url: str) -> Redis:
    """A client for pub/sub: no read timeout (it waits for messages), a connect timeout and health checks."""
    return Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=SUBSCRIBER_HEALTH_CHECK_SECONDS,
    )
