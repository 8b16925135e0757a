from __future__ import annotations

import asyncio
import os
import sys
import threading

from aisupport.core.config import Settings
from aisupport.core.security import PasswordHasher, PasswordHashingBusy


def _hasher(concurrency: int, max_waiting: int = 200) -> PasswordHasher:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        ARGON2_TIME_COST=2,
        ARGON2_MEMORY_COST_KIB=8 * 1024,
        ARGON2_PARALLELISM=1,
        PASSWORD_HASH_CONCURRENCY=concurrency,
        PASSWORD_HASH_MAX_WAITING=max_waiting,
    )
    return PasswordHasher(settings)


def _hashing_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("password-hash")]


async def test_hashing_runs_off_the_event_loop_on_few_low_priority_threads() -> None:
    before = set(_hashing_threads())
    hasher = _hasher(concurrency=2)
    ticks = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    hashes = await asyncio.gather(*(hasher.hash(f"password number {i}") for i in range(12)))
    done.set()
    await watcher
    threads = [thread for thread in _hashing_threads() if thread not in before]
    hasher.close()
    assert all(value.startswith("$argon2id$") for value in hashes)
    assert len(threads) == 2  # a storm queues for two threads instead of holding 12 x memory_cost
    assert ticks > 12  # the loop kept running while hashes were computed
    if sys.platform == "linux":  # the event loop's thread outranks hashing for the CPU
        assert {os.getpriority(os.PRIO_PROCESS, thread.native_id or 0) for thread in threads} == {19}


async def test_a_full_hashing_queue_answers_busy_instead_of_waiting() -> None:
    hasher = _hasher(concurrency=1, max_waiting=2)
    results = await asyncio.gather(*(hasher.hash(f"password {i}") for i in range(6)), return_exceptions=True)
    hasher.close()
    busy = [result for result in results if isinstance(result, PasswordHashingBusy)]
    assert len(busy) == 3  # one hashing, two waiting, the rest refused at once
    assert (busy[0].status, busy[0].code) == (503, "password_hashing_busy")
    assert busy[0].headers == {"Retry-After": "5"}
    assert all(isinstance(result, str) and result.startswith("$argon2id$") for result in results[:3])


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
