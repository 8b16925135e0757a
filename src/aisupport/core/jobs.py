"""Background jobs on procrastinate (PostgreSQL is the queue).

Jobs are deferred on the request's own connection, inside its transaction (`defer`), so a job exists
exactly when the change that caused it committed. Tasks live in their domain package (`<domain>/tasks.py`)
and get what they need (settings, database) from `Services` in the job context.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import procrastinate
import structlog
from procrastinate import JobContext, PsycopgConnector, RetryStrategy
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aisupport.core.config import Settings
from aisupport.core.db import create_sessionmaker, mark_written
from aisupport.core.metrics import JOB_OUTCOMES
from aisupport.core.tracing import current_carrier, job_span

log = structlog.get_logger("aisupport.jobs")

# A failing job (a mail server down, a deadlock) is retried up to 10 times, 2, 4, 8, ... 1024 s apart
# (about 34 minutes in all); then it is marked failed and logged (`job_failed`).
RETRY = RetryStrategy(max_attempts=10, exponential_wait=2)

# The connector is replaced by a configured one in each process that runs a worker (`run_worker`);
# deferring on a request's connection needs none of its own.
# The tasks' modules are named by the application that runs the worker (aisupport.main.TASK_MODULES).
jobs = procrastinate.App(connector=PsycopgConnector())


@dataclass(frozen=True)
class Services:
    """What every task uses, built once per worker (packages add their own to the job context, such as
    mail's mailer: `run_worker(..., context=...)`)."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]


def services_of(context: JobContext) -> Services:
    services: Services = context.additional_context["services"]
    return services


# A job's own argument carrying where it came from (request id, trace context); the worker takes it
# out before calling the task.
ORIGIN = "_origin"


async def defer(
    db: AsyncSession, task_name: str, *, after: timedelta | None = None, **arguments: Any
) -> None:
    """Queue a job in the request's transaction: it commits, or vanishes, with the request's writes;
    to run no sooner than `after` from now, if given."""
    connection = await db.connection()
    raw = await connection.get_raw_connection()
    mark_written(db)
    schedule = {"schedule_in": {"seconds": after.total_seconds()}} if after is not None else {}
    await _task(raw.driver_connection, task_name, **schedule).defer_async(**arguments, **_origin())


async def defer_once(db: AsyncSession, task_name: str, lock: str, **arguments: Any) -> None:
    """Queue a job in the request's transaction, unless one with the same queueing `lock` is queued and
    not started yet (that one will see this transaction's work too)."""
    connection = await db.connection()
    raw = await connection.get_raw_connection()
    mark_written(db)
    await defer_unless_queued(raw.driver_connection, task_name, lock, **arguments)


async def defer_unless_queued(driver_connection: Any, task_name: str, lock: str, **arguments: Any) -> None:
    """Queue a job on a psycopg connection already in the transaction (a session hook's, at commit),
    unless a job with the same queueing `lock` is queued and not started yet (that one will see this
    transaction's work too). Inside a savepoint: the refused insert would otherwise abort the
    transaction."""
    task = _task(driver_connection, task_name, queueing_lock=lock)
    await driver_connection.execute("SAVEPOINT defer_unless_queued")
    try:
        await task.defer_async(**arguments, **_origin())
    except procrastinate.exceptions.AlreadyEnqueued:
        await driver_connection.execute("ROLLBACK TO SAVEPOINT defer_unless_queued")
    else:
        await driver_connection.execute("RELEASE SAVEPOINT defer_unless_queued")


async def forget_queued(db: AsyncSession, task_name: str, organization_id: uuid.UUID) -> None:
    """Delete the jobs of `task_name` still waiting for an organization (one about to be deleted, whose
    jobs would find nothing: an evaluation's)."""
    await db.execute(
        text(
            "DELETE FROM procrastinate_jobs WHERE task_name = :task AND status = 'todo'"
            " AND args->>'organization_id' = :organization"
        ),
        {"task": task_name, "organization": str(organization_id)},
    )


def _task(driver_connection: Any, task_name: str, **options: Any) -> Any:
    return jobs.configure_task(task_name, allow_unknown=False, connection=driver_connection, **options)


def _origin() -> dict[str, dict[str, Any]]:
    """Where a job comes from: the request id and trace context of the code that queues it."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {ORIGIN: {"request_id": request_id, **current_carrier()}}


def libpq_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (procrastinate's psycopg pool takes no driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def run_worker(
    settings: Settings,
    engine: AsyncEngine,
    *,
    context: Mapping[str, object],
    wait: bool = True,
    install_signal_handlers: bool = False,
) -> None:
    """Run jobs until cancelled (or, with wait=False, until the queue is empty)."""
    services = Services(settings=settings, sessionmaker=create_sessionmaker(engine))
    connector = PsycopgConnector(conninfo=libpq_url(engine.url.render_as_string(hide_password=False)))
    with jobs.replace_connector(connector):
        async with jobs.open_async():
            await recover_stalled_jobs(settings.WORKER_STALLED_AFTER_SECONDS)
            await jobs.run_worker_async(
                concurrency=settings.WORKER_CONCURRENCY,
                wait=wait,
                install_signal_handlers=install_signal_handlers,
                additional_context={**context, "services": services},
                update_heartbeat_interval=settings.WORKER_HEARTBEAT_SECONDS,
                stalled_worker_timeout=settings.WORKER_STALLED_AFTER_SECONDS,
                shutdown_graceful_timeout=settings.WORKER_SHUTDOWN_SECONDS,
                worker_middleware=[_observe],
            )


async def recover_stalled_jobs(stalled_after_seconds: float) -> int:
    """Requeue jobs whose worker stopped sending heartbeats (killed mid-job); returns how many."""
    stalled = list(await jobs.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_seconds))
    for job in stalled:
        await jobs.job_manager.retry_job(job)
        log.warning("job_recovered", task=job.task_name, job_id=job.id, worker_id=job.worker_id)
    return len(stalled)


@jobs.periodic(cron="* * * * *", periodic_id="recover-stalled-jobs")
@jobs.task(name="jobs:recover_stalled_jobs", queueing_lock="recover_stalled_jobs", pass_context=True)
async def recover_stalled_jobs_every_minute(context: JobContext, timestamp: int) -> None:
    await recover_stalled_jobs(services_of(context).settings.WORKER_STALLED_AFTER_SECONDS)


async def _observe(call_next: Callable[[], Awaitable[Any]], context: JobContext, worker: Any) -> Any:
    """Around every job: its request id and trace in logs and spans, its outcome logged and counted."""
    job = context.job
    origin = job.task_kwargs.pop(ORIGIN, None)
    carrier = {key: str(value) for key, value in origin.items() if value} if isinstance(origin, dict) else {}
    request_id = carrier.pop("request_id", None)
    with (
        structlog.contextvars.bound_contextvars(task=job.task_name, job_id=job.id, request_id=request_id),
        job_span(job.task_name, carrier),
    ):
        try:
            result = await call_next()
        except Exception as exc:
            task = context.app.tasks.get(job.task_name)
            if task is None or task.get_retry_exception(exc, job) is None:
                log.error("job_failed", attempts=job.attempts + 1, error=type(exc).__name__)
                JOB_OUTCOMES.labels(job.task_name, "failed").inc()
            else:
                log.warning("job_will_retry", attempts=job.attempts + 1, error=type(exc).__name__)
                JOB_OUTCOMES.labels(job.task_name, "retried").inc()
            raise
        JOB_OUTCOMES.labels(job.task_name, "succeeded").inc()
        return result
