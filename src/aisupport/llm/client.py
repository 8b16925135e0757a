"""Calls to a model provider speaking the OpenAI HTTP API (OpenAI, Azure OpenAI, Ollama, vLLM,
llama.cpp, LM Studio, OpenRouter...): one JSON POST, sent through our guarded transport (core.outbound:
the base URL cannot be pointed inside our network unless the operator allows it; each redirect checked).
Not through the `openai` package: its current major version brings an HTTP stack of its own (httpx2)
that the guard and our tracing do not cover (decision 0052).

Each call has its time, is retried with backoff on 408, 409, 429, 5xx and lost connections (a
Retry-After of at most 30 s honoured), and goes through a circuit breaker per base URL: after
BREAKER_FAILURES failures in a row, calls fail at once for BREAKER_SECONDS, then one is let through.
Errors come out as ProviderError with a reason fit to show an admin: never the key, never the
provider's own words (which may quote what was sent)."""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import httpx

from aisupport.core.outbound import GuardedTransport, TargetRefused

RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5  # doubled each time, with jitter
RETRY_AFTER_MAX_SECONDS = 30
BREAKER_FAILURES = 5
BREAKER_SECONDS = 30.0


class ProviderError(Exception):
    """The provider could not answer; `str()` says why, for an admin."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # ".../v1"
    api_key: str | None


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


@dataclass
class Breakers:
    """Circuit breakers by base URL (the process's own, unless a caller keeps its own set)."""

    failures: int = BREAKER_FAILURES
    seconds: float = BREAKER_SECONDS
    by_url: dict[str, _Breaker] = field(default_factory=dict)

    def of(self, base_url: str) -> _Breaker:
        return self.by_url.setdefault(base_url, _Breaker())


BREAKERS = Breakers()


_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _http_client(allow_private: bool) -> httpx.AsyncClient:
    """The event loop's HTTP client for providers (connections kept between calls)."""
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    if allow_private not in clients:
        transport = GuardedTransport(
            allow_private=allow_private, limits=httpx.Limits(max_connections=20, max_keepalive_connections=10)
        )
        clients[allow_private] = httpx.AsyncClient(transport=transport, follow_redirects=False)
    return clients[allow_private]


async def call(
    endpoint: Endpoint,
    path: str,
    body: dict[str, Any],
    *,
    allow_private: bool,
    seconds: float,
    retries: int,
    breakers: Breakers = BREAKERS,
) -> dict[str, Any]:
    """POST `body` to `{base_url}{path}`; the answer's JSON object. Each request is given `seconds`."""
    breaker = breakers.of(endpoint.base_url)
    if breaker.open_until > time.monotonic():
        raise ProviderError("the provider failed repeatedly: calls are paused for a while")
    try:
        answer = await _call(
            endpoint, path, body, allow_private=allow_private, seconds=seconds, retries=retries
        )
    except ProviderError:
        breaker.failures += 1
        if breaker.failures >= breakers.failures:
            breaker.open_until = time.monotonic() + breakers.seconds
        raise
    breaker.failures, breaker.open_until = 0, 0.0
    return answer


async def _call(
    endpoint: Endpoint, path: str, body: dict[str, Any], *, allow_private: bool, seconds: float, retries: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    url = endpoint.base_url.rstrip("/") + path
    for attempt in range(retries + 1):
        last = attempt == retries
        retry_after = None
        try:
            response = await _http_client(allow_private).post(
                url, json=body, headers=headers, timeout=seconds
            )
        except TargetRefused as refused:
            raise ProviderError(f"the base URL is refused: {refused}") from None
        except httpx.TimeoutException:
            if last:
                raise ProviderError(f"the provider did not answer within {seconds:g} s") from None
        except httpx.HTTPError:
            if last:
                raise ProviderError("the provider could not be reached") from None
        else:
            if response.status_code == 200:
                return _json(response)
            if last or response.status_code not in RETRIED:
                raise ProviderError(f"the provider answered HTTP {response.status_code}")
            retry_after = response.headers.get("Retry-After")
        await asyncio.sleep(_pause(attempt, retry_after))
    raise AssertionError("unreachable")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        raise ProviderError("the provider's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderError("the provider's answer is not a JSON object")
    return answer


def _pause(attempt: int, retry_after: str | None) -> float:
    if retry_after is not None and retry_after.isdigit() and int(retry_after) <= RETRY_AFTER_MAX_SECONDS:
        return float(retry_after)
    return BACKOFF_SECONDS * float(2**attempt) * (0.5 + random.random())  # noqa: S311 (jitter, not a secret)
