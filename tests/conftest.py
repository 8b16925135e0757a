"""Fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL) and a real Redis (TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient, Response
from psycopg import sql
from sqlalchemy.engine import make_url

from aisupport.cli import migrate
from aisupport.core.config import PROJECT_ROOT, RATE_LIMIT_SETTINGS, Settings
from aisupport.core.embedded import start_embedded_postgres
from aisupport.core.jobs import run_worker
from aisupport.mail.delivery import worker_context
from aisupport.main import create_app
from tests.split import GUARD, mark_system_tests, shared_server

IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_CLIENT_IP = "203.0.113.10"
PASSWORD = "correct horse battery staple"


# Fast tests and system tests (tests/split.py, docs/decisions/0029-test-split.md): the marker is applied
# here, from what each test's code does, and the guard refuses a process started by an unmarked test.
def pytest_configure(config: pytest.Config) -> None:
    GUARD.install()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: every collected test gets its verdict
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_system_tests(config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    with GUARD.watching(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    with GUARD.watching(item):
        return (yield)


@pytest.fixture(scope="session")
@shared_server
def pg_admin_url() -> str:
    """A connection to the test server's maintenance database (sync psycopg form)."""
    url = os.environ.get("TEST_DATABASE_URL") or start_embedded_postgres(
        PROJECT_ROOT / ".data" / "test-pgdata", database="postgres"
    )
    return (
        make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def create_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases on the test server; all are dropped at the end of the session."""
    created: list[str] = []

    def create() -> str:
        name = f"aisupport_test_{secrets.token_hex(4)}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return (
            make_url(pg_admin_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )

    yield create
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(create_database: Callable[[], str]) -> str:
    url = create_database()
    migrate(Settings(_env_file=None, DATABASE_URL=url))  # type: ignore[call-arg]
    return url


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} is required under CI=true: {exc}")
        return None
    return url


@pytest.fixture
def require_redis(redis_url: str | None) -> str:
    if redis_url is None:
        pytest.skip("no Redis answers at TEST_REDIS_URL (outside CI only)")
    return redis_url


class Mailbox:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

    Recipients listed in `refuse_once` get a 451 (try later) the first time; those in `stall` make the
    first delivery hang (a mail server that stopped answering) and succeed afterwards.
    """

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.refuse_once: set[str] = set()
        self.stall: set[str] = set()
        self.stalled = threading.Event()
        self._attempted: set[str] = set()

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802
        recipients = set(envelope.rcpt_tos)
        first_time = not (recipients & self._attempted)
        self._attempted |= recipients
        if first_time and recipients & self.refuse_once:
            return "451 4.3.0 Try again later"
        if first_time and recipients & self.stall:
            self.stalled.set()
            await asyncio.sleep(60)
            return "451 4.3.0 Timed out"
        assert isinstance(envelope.content, bytes)
        self.messages.append(
            message_from_bytes(envelope.content, _class=EmailMessage, policy=email_policy.default)
        )
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"].casefold() == address.casefold()]

    def token_sent_to(self, address: str, prefix: str = "") -> str:
        """The secret of the newest link mailed to `address` (whose token starts with `prefix`)."""
        for message in reversed(self.to(address)):
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            match = re.search(rf"token=({prefix}[A-Za-z0-9_-]+)", text)
            if match:
                return match.group(1)
        raise AssertionError(f"no link was mailed to {address}")


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


async def run_jobs(client: AsyncClient) -> None:
    """Run the queued jobs of the app behind `client` until none is left (a real worker, wait=False)."""
    app = client.app  # type: ignore[attr-defined]
    settings: Settings = app.state.settings
    await run_worker(settings, app.state.engine, context=worker_context(settings), wait=False)


@pytest.fixture(scope="session")
def make_settings(
    database_url: str, redis_url: str | None, mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings for a test app: real database and Redis, cheap argon2, limits out of the way, files in
    a folder of the test session."""
    storage = tmp_path_factory.mktemp("storage")

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ARGON2_TIME_COST": 1,
            "ARGON2_MEMORY_COST_KIB": 1024,
            "ARGON2_PARALLELISM": 1,
            **dict.fromkeys(RATE_LIMIT_SETTINGS, "100000/minute"),  # tests that check a limit set it
            "RATE_LIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": mailbox.port,
            "SMTP_TLS": "none",
            "WORKER_STALLED_AFTER_SECONDS": 2,
            "STORAGE_LOCAL_PATH": storage,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@asynccontextmanager
async def serve(
    settings: Settings, *, client_ip: str = TEST_CLIENT_IP, base_url: str = "http://testserver"
) -> AsyncIterator[AsyncClient]:
    """The app on an in-memory ASGI transport, with its lifespan, as seen from `client_ip`."""
    app = create_app(settings)
    async with LifespanManager(app):
        transport = ASGITransport(app=app, client=(client_ip, 50000))
        async with AsyncClient(transport=transport, base_url=base_url) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture(scope="session")
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with serve(settings) as client:
        yield client


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def signup(client: AsyncClient, *, transport: str = "body", **fields: Any) -> Response:
    body = {"email": new_email(), "password": PASSWORD, "transport": transport, **fields}
    response = await client.post("/auth/signup", json=body)
    assert response.status_code == 201, response.text
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    """`aisupport serve` as a real process (the README's run command), logging to a file."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 45) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def service_env(**settings: str) -> dict[str, str]:
    """The test runner's environment without any aisupport setting, plus `settings`."""
    prefixes = ("DATABASE_", "APP_DATABASE_", "REDIS_", "SMTP_", "RATE_LIMIT_", "ARGON2_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update({"ENV": "dev", "API_HOST": "127.0.0.1", "SECRET_KEY": "service-test-" + "x" * 40}, **settings)
    return env


@contextmanager
def running_service(tmp_path: Path, **settings: str) -> Iterator[ServiceProcess]:
    """Start `aisupport serve` on a free port and wait until it is ready; SIGTERM it afterwards."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "aisupport.cli", "serve"],
            env=service_env(API_PORT=str(port), **settings),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
        try:
            _wait_ready(service)
            yield service
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    process.kill()


def _wait_ready(service: ServiceProcess, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError("the service exited during start-up:\n" + service.output())
        try:
            if httpx.get(f"{service.base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready:\n" + service.output())
