"""The README's run command as a real process: embedded PostgreSQL, migrations, mail, clean stops."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx

from aisupport.core.config import PROJECT_ROOT
from tests.conftest import PASSWORD, new_email, running_service

# The development console format: an ISO time in UTC, the level, the event.
CONSOLE_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \[(debug|info|warning|error|critical) *\] \S"
)


def test_serve_from_the_example_env_file_runs_embedded_delivers_mail_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    # The README's steps: `cp .env.example .env`, then `make run` (a fresh embedded database). One
    # start-up serves every check of the run command: a fresh embedded PostgreSQL costs seconds.
    shutil.copy(PROJECT_ROOT / ".env.example", tmp_path / ".env")
    pgdata = tmp_path / "pgdata"
    mail = tmp_path / "mail"
    with running_service(tmp_path, EMBEDDED_PGDATA=str(pgdata), EMAIL_DEV_DIR=str(mail)) as service:
        base_url = service.base_url
        assert httpx.get(f"{base_url}/health/ready").status_code == 200
        credentials = {"email": new_email(), "password": PASSWORD, "transport": "body"}
        signed_up = httpx.post(f"{base_url}/auth/signup", json=credentials)
        assert signed_up.status_code == 201
        me = httpx.get(
            f"{base_url}/auth/me", headers={"Authorization": f"Bearer {signed_up.json()['access_token']}"}
        )
        assert me.status_code == 200
        assert httpx.get(f"{base_url}/docs").status_code == 200
        assert (pgdata / "postmaster.pid").exists()
        # The in-process worker delivers mail to the development folder.
        verification = _wait_for_mail(mail, "verify-email?token=ev_")
        forgot = httpx.post(f"{base_url}/auth/password/forgot", json={"email": credentials["email"]})
        assert forgot.status_code == 202
        reset = _wait_for_mail(mail, "reset-password?token=pr_")
        returncode = service.stop()
    output = service.output()
    assert returncode == 128 + signal.SIGTERM
    assert output.count("rate_limiting_in_process") == 1
    assert "Application shutdown complete" in output
    assert not (pgdata / "postmaster.pid").exists()  # the embedded PostgreSQL was stopped too
    assert output.count("job_worker_in_process") == 1
    assert output.count("email_written") == 2
    for secret_link in (verification, reset):
        assert secret_link not in output  # the log names the file, never the link

    # Every line, from the first, says what it does in one format, and start-up goes in this order.
    lines = output.splitlines()
    assert lines
    assert [line for line in lines if not CONSOLE_LINE.match(line)] == []
    progress = [
        "starting_embedded_postgresql",
        "embedded_postgresql_ready",
        "applying_migrations",
        "migrations_applied",
        "Uvicorn running on http://127.0.0.1:",
    ]
    positions = [next((i for i, line in enumerate(lines) if step in line), -1) for step in progress]
    assert -1 not in positions, dict(zip(progress, positions, strict=True))
    assert positions == sorted(positions)  # in this order
    assert f"pgdata={pgdata}" in lines[positions[0]]


async def test_sigterm_lets_requests_in_flight_finish_and_refuses_new_ones(
    tmp_path: Path, database_url: str, client: httpx.AsyncClient
) -> None:
    # A deliberately slow argon2 makes a login take long enough to be in flight at SIGTERM. The account
    # is made in process with cheap hashing: the service checks that hash at once, then upgrades it to its
    # own slow cost within the login (the only slow hash of the test besides the start-up's).
    credentials = {"email": new_email(), "password": PASSWORD, "transport": "body"}
    assert (await client.post("/auth/signup", json=credentials)).status_code == 201
    with running_service(
        tmp_path, DATABASE_URL=database_url, ARGON2_TIME_COST="24", SHUTDOWN_TIMEOUT_SECONDS="20"
    ) as service:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
            finished: list[float] = []
            in_flight = asyncio.create_task(http.post("/auth/login", json=credentials))
            in_flight.add_done_callback(lambda _: finished.append(time.monotonic()))
            await asyncio.sleep(0.1)
            service.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=service.base_url, timeout=5) as late:
                try:
                    refused = (await late.get("/health/live")).status_code
                except httpx.ConnectError:
                    refused = None
            answer = await in_flight
        returncode = await asyncio.to_thread(service.process.wait, 30)
    assert refused is None  # no new connections once shutting down
    assert finished[0] > signalled  # it was still in flight when SIGTERM arrived
    assert answer.status_code == 200  # and it finished
    assert returncode == 128 + signal.SIGTERM


def _wait_for_mail(folder: Path, link: str, timeout: float = 30) -> str:
    """The secret link of the first message in `folder` that contains `link`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
            message = message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=policy.default)
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            if link in text:
                return text[text.index(link) :].split()[0]
        time.sleep(0.2)
    raise AssertionError(f"no message with {link} in {folder}")
