from __future__ import annotations

import asyncio

from aisupport.core.config import Settings
from aisupport.core.security import PasswordHasher


def _hasher(concurrency: int) -> PasswordHasher:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        ARGON2_TIME_COST=2,
        ARGON2_MEMORY_COST_KIB=8 * 1024,
        ARGON2_PARALLELISM=1,
        PASSWORD_HASH_CONCURRENCY=concurrency,
    )
    return PasswordHasher(settings)


async def test_hashing_runs_off_the_event_loop_with_bounded_concurrency() -> None:
    hasher = _hasher(concurrency=2)
    ticks = 0
    most_in_flight = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal ticks, most_in_flight
        while not done.is_set():
            ticks += 1
            most_in_flight = max(most_in_flight, int(hasher._limiter.borrowed_tokens))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    hashes = await asyncio.gather(*(hasher.hash(f"password number {i}") for i in range(12)))
    done.set()
    await watcher
    assert all(value.startswith("$argon2id$") for value in hashes)
    assert most_in_flight == 2  # a storm queues at the limit instead of holding 12 x memory_cost
    assert ticks > 12  # the loop kept running while hashes were computed


async def test_verify_and_dummy_verify() -> None:
    hasher = _hasher(concurrency=1)
    stored = await hasher.hash("the right one")
    assert await hasher.verify("the right one", stored) == (True, None)
    assert (await hasher.verify("the wrong one", stored))[0] is False
    assert await hasher.verify("anything", None) == (False, None)


async def test_weaker_argon2_parameters_are_upgraded_on_verify() -> None:
    old = await _hasher(concurrency=1).hash("same password")
    stronger = PasswordHasher(
        Settings(_env_file=None, ARGON2_TIME_COST=3, ARGON2_MEMORY_COST_KIB=8 * 1024, ARGON2_PARALLELISM=1)  # type: ignore[call-arg]
    )
    valid, upgraded = await stronger.verify("same password", old)
    assert valid
    assert upgraded is not None
    assert "t=3" in upgraded
