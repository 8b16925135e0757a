"""Chat completions from a provider speaking the OpenAI API (llm.client: guarded, retried, behind a
circuit breaker), with the tokens each answer used, for the usage ledger."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aisupport.llm.client import BREAKERS, Breakers, Endpoint, ProviderError, call


@dataclass(frozen=True)
class Completion:
    text: str
    model: str  # as the provider named it
    tokens_in: int
    tokens_out: int
    finish_reason: str | None  # `stop`, `length` (cut at max_tokens)...
    latency_ms: int


async def complete(
    endpoint: Endpoint,
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    temperature: float = 0.0,
    json_object: bool = False,
    allow_private: bool,
    seconds: float,
    retries: int,
    breakers: Breakers = BREAKERS,
) -> Completion:
    """One completion of `messages` (`{"role", "content"}`), at most `max_tokens`; `json_object` asks
    for a JSON object (`response_format`), which the caller still validates."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if json_object:
        body["response_format"] = {"type": "json_object"}
    started = time.monotonic()
    answer = await call(
        endpoint,
        "/chat/completions",
        body,
        allow_private=allow_private,
        seconds=seconds,
        retries=retries,
        breakers=breakers,
    )
    try:
        choice = answer["choices"][0]
        text = choice["message"]["content"]
        usage = answer.get("usage") or {}
        tokens_in, tokens_out = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (KeyError, IndexError, TypeError, ValueError):
        raise ProviderError("the provider's answer is not a chat completion") from None
    if not isinstance(text, str):
        raise ProviderError("the provider's answer has no text")
    return Completion(
        text=text,
        model=str(answer.get("model") or model),
        tokens_in=max(tokens_in, 0),
        tokens_out=max(tokens_out, 0),
        finish_reason=choice.get("finish_reason") if isinstance(choice, dict) else None,
        latency_ms=round((time.monotonic() - started) * 1000),
    )
