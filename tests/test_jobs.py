"""The job queue: jobs commit with the request that deferred them, transient failures are retried with
backoff, a job that keeps failing ends as failed and is logged, and a job whose worker is killed mid-way
completes on another worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from procrastinate import RetryStrategy
from sqlalchemy import text

from aisupport.core.config import Settings
from aisupport.core.db import DbSession
from aisupport.core.errors import AppError
from aisupport.core.jobs import defer, jobs
from tests.conftest import Mailbox, free_port, run_jobs, serve


@jobs.task(name="tests:always_fails", retry=RetryStrategy(max_attempts=2))
async def always_fails(marker: str) -> None:
    raise ConnectionError(f"the outside world is down ({marker})")


def _add_deferring_routes(app: FastAPI) -> None:
    """Two endpoints on the real app and its real request session: both defer a job, one then fails."""

    async def defer_then_succeed(marker: str, db: DbSession) -> dict[str, str]:
        await _defer_notice(db, marker)
        return {"marker": marker}

    async def defer_then_fail(marker: str, db: DbSession) -> dict[str, str]:
        await _defer_notice(db, marker)
        raise AppError(409, "conflict_after_defer", "Failed after the job was deferred.")

    app.add_api_route("/test/defer-then-succeed", defer_then_succeed, methods=["POST"])
    app.add_api_route("/test/defer-then-fail", defer_then_fail, methods=["POST"])


async def _defer_notice(db: DbSession, marker: str) -> None:
    to = f"{marker}@example.com"
    await defer(db, "auth:send_notice", to=to, template="signup_existing", values={"name": None, "email": to})


async def _jobs_for(client: AsyncClient, fragment: str) -> list[tuple[str, int]]:
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        rows = await db.execute(
            text(
                "SELECT status::text, attempts FROM procrastinate_jobs WHERE args::text LIKE :f ORDER BY id"
            ),
            {"f": f"%{fragment}%"},
        )
        return [(status, attempts) for status, attempts in rows]


async def test_a_job_exists_exactly_when_its_request_committed(client: AsyncClient, mailbox: Mailbox) -> None:
    _add_deferring_routes(client.app)  # type: ignore[attr-defined]
    committed, failed = f"ok-{uuid.uuid4().hex[:8]}", f"fail-{uuid.uuid4().hex[:8]}"
    assert (await client.post("/test/defer-then-succeed", params={"marker": committed})).status_code == 200
    refused = await client.post("/test/defer-then-fail", params={"marker": failed})
    assert refused.status_code == 409
    assert await _jobs_for(client, committed) == [("todo", 0)]
    assert await _jobs_for(client, failed) == []
    await run_jobs(client)
    assert len(mailbox.to(f"{committed}@example.com")) == 1
    assert mailbox.to(f"{failed}@example.com") == []


async def test_a_transient_mail_failure_is_retried_after_a_backoff(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    _add_deferring_routes(client.app)  # type: ignore[attr-defined]
    marker = f"later-{uuid.uuid4().hex[:8]}"
    mailbox.refuse_once.add(f"{marker}@example.com")
    await client.post("/test/defer-then-succeed", params={"marker": marker})
    await run_jobs(client)
    assert mailbox.to(f"{marker}@example.com") == []
    assert await _jobs_for(client, marker) == [("todo", 1)]  # scheduled again, 2 s later
    await asyncio.sleep(2.2)
    await run_jobs(client)
    assert len(mailbox.to(f"{marker}@example.com")) == 1
    assert await _jobs_for(client, marker) == [("succeeded", 2)]


async def test_a_job_that_keeps_failing_ends_failed_and_is_logged(
    client: AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    marker = f"doomed-{uuid.uuid4().hex[:8]}"
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        await defer(db, "tests:always_fails", marker=marker)
        await db.commit()
    capfd.readouterr()
    for _ in range(3):  # the first run and two retries, each due at once (this strategy has no wait)
        await run_jobs(client)
    assert await _jobs_for(client, marker) == [("failed", 3)]
    logs = capfd.readouterr().err
    assert "job_will_retry" in logs
    assert "job_failed" in logs
    assert "tests:always_fails" in logs


async def test_a_job_whose_worker_is_killed_completes_on_another_worker(
    make_settings: Callable[..., Settings], database_url: str, mailbox: Mailbox, tmp_path: Path
) -> None:
    async with serve(make_settings()) as client:
        _add_deferring_routes(client.app)  # type: ignore[attr-defined]
        marker = f"stalled-{uuid.uuid4().hex[:8]}"
        address = f"{marker}@example.com"
        mailbox.stall.add(address)
        mailbox.stalled.clear()
        await client.post("/test/defer-then-succeed", params={"marker": marker})

        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "REDIS_", "SMTP_"))
        }
        env |= {
            "ENV": "test",
            "DATABASE_URL": database_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(mailbox.port),
            "SMTP_TLS": "none",
            "WORKER_HEARTBEAT_SECONDS": "0.5",
            "LOG_LEVEL": "WARNING",
        }
        metrics_port = free_port()
        env["WORKER_METRICS_PORT"] = str(metrics_port)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aisupport.cli", "worker", env=env, cwd=tmp_path, stdout=subprocess.DEVNULL
        )
        try:
            # The first worker is in the middle of the job: its mail server stopped answering.
            assert await asyncio.to_thread(mailbox.stalled.wait, 60), "the worker never started the job"
            assert await _jobs_for(client, marker) == [("doing", 0)]
            # The worker's own metrics port answers while it works.
            async with httpx.AsyncClient() as scraper:
                scraped = await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert scraped.status_code == 200
            assert "aisupport_job_outcomes" in scraped.text
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        # Once its heartbeat is older than WORKER_STALLED_AFTER_SECONDS (2 s here), another worker
        # takes the job up again.
        killed = time.monotonic()
        while not mailbox.to(address) and time.monotonic() - killed < 30:
            await asyncio.sleep(0.25)
            await run_jobs(client)
        assert len(mailbox.to(address)) == 1
        assert [status for status, _ in await _jobs_for(client, marker)] == ["succeeded"]


async def test_a_mail_job_run_again_after_it_sent_sends_nothing(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    _add_deferring_routes(client.app)  # type: ignore[attr-defined]
    marker = f"once-{uuid.uuid4().hex[:8]}"
    await client.post("/test/defer-then-succeed", params={"marker": marker})
    await run_jobs(client)
    [message] = mailbox.to(f"{marker}@example.com")
    # A worker that died after sending and committing, but before marking the job done: the job
    # comes back (stalled-job recovery does exactly this) and runs again.
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        job_id = await db.scalar(
            text("UPDATE procrastinate_jobs SET status = 'todo' WHERE args::text LIKE :f RETURNING id"),
            {"f": f"%{marker}%"},
        )
        await db.commit()
    await run_jobs(client)
    assert len(mailbox.to(f"{marker}@example.com")) == 1
    assert message["Message-ID"].startswith(f"<job-{job_id}@")
