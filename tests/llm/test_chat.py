"""The chat provider client (issue 14 point 1) against a real HTTP server on loopback speaking the
OpenAI API, scripted: answers, 429 and 5xx (retried), malformed answers, timeouts, a failing provider
(the circuit breaker opens, then lets a call through)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from aisupport.llm.chat import Completion, complete
from aisupport.llm.client import Breakers, Endpoint, ProviderError
from tests.openai_server import ScriptedOpenAI, scripted_openai

KEY = "sk-test-" + "c" * 40
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Where is my parcel?"},
]


@pytest.fixture
def provider() -> Iterator[ScriptedOpenAI]:
    with scripted_openai() as server:
        yield server


async def _complete(
    provider: ScriptedOpenAI,
    breakers: Breakers | None = None,
    *,
    seconds: float = 5.0,
    retries: int = 2,
    json_object: bool = False,
) -> Completion:
    return await complete(
        Endpoint(provider.base_url, KEY),
        "small-model",
        MESSAGES,
        max_tokens=200,
        json_object=json_object,
        allow_private=True,
        seconds=seconds,
        retries=retries,
        breakers=breakers or Breakers(),
    )


async def test_an_answer_is_read_with_the_tokens_it_used(provider: ScriptedOpenAI) -> None:
    provider.script.replies = ["It ships tomorrow."]
    answer = await _complete(provider, json_object=True)
    assert answer.text == "It ships tomorrow."
    assert (answer.tokens_in, answer.tokens_out) == (6, 3)
    assert answer.finish_reason == "stop"
    (request,) = provider.requests
    assert request["model"] == "small-model"
    assert request["messages"] == MESSAGES
    assert request["max_tokens"] == 200
    assert request["response_format"] == {"type": "json_object"}
    assert provider.headers[0]["Authorization"] == f"Bearer {KEY}"


async def test_passing_trouble_is_retried_and_lasting_trouble_is_a_clear_error(
    provider: ScriptedOpenAI,
) -> None:
    provider.script.statuses = [429, 500, 503]
    provider.script.retry_after = "0"
    assert (await _complete(provider, retries=3)).text == "ok"
    assert len(provider.requests) == 4
    provider.script.statuses = [401]
    with pytest.raises(ProviderError, match=r"^the provider answered HTTP 401$"):
        await _complete(provider)
    provider.script.malformed = 1
    with pytest.raises(ProviderError, match="not JSON"):
        await _complete(provider)
    provider.script.statuses = [500, 500, 500]
    with pytest.raises(ProviderError, match="HTTP 500") as raised:
        await _complete(provider)
    assert KEY not in str(raised.value)


async def test_a_slow_provider_times_out(provider: ScriptedOpenAI) -> None:
    provider.script.delay_seconds = 2
    started = asyncio.get_running_loop().time()
    with pytest.raises(ProviderError, match=r"did not answer within 0\.3 s"):
        await _complete(provider, seconds=0.3, retries=0)
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_a_failing_provider_is_paused_then_tried_again(provider: ScriptedOpenAI) -> None:
    breakers = Breakers(failures=2, seconds=0.5)
    provider.script.statuses = [401, 401]
    for _ in range(2):
        with pytest.raises(ProviderError, match="401"):
            await _complete(provider, breakers=breakers)
    with pytest.raises(ProviderError, match="paused"):
        await _complete(provider, breakers=breakers)
    assert len(provider.requests) == 2  # the paused call never reached the provider
    await asyncio.sleep(0.6)
    assert (await _complete(provider, breakers=breakers)).text == "ok"
