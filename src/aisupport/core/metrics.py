"""Prometheus metrics, served by `GET /metrics` (health/router.py); docs/production.md says what each
means and which to alert on. They live in prometheus_client's process-wide registry; the gauges about
the database (pool, job queue) are read at scrape time (`read_database_gauges`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.pool import AsyncAdaptedQueuePool

HTTP_REQUESTS = Counter(
    "aisupport_http_requests",
    "Requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "aisupport_http_request_duration_seconds",
    "Time to answer, by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetrics:
    """Counts and times answered requests. The labelled children are kept per (method, route, status):
    looking one up in prometheus_client takes a lock and builds its key on every call."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        # Unknown paths share one label, so scanners cannot grow the metric without bound.
        route = route or "unmatched"
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = HTTP_REQUESTS.labels(
                method, route, str(status)
            )
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = HTTP_DURATION.labels(method, route)
        counter.inc()
        timer.observe(seconds)


DB_POOL_CONNECTIONS = Gauge(
    "aisupport_db_pool_connections", "Database connections of this process, by state.", ["state"]
)
DB_POOL_SIZE = Gauge("aisupport_db_pool_size", "Most database connections this process may open.")
JOBS = Gauge("aisupport_jobs", "Background jobs in the queue, by status.", ["status"])
JOB_OLDEST_TODO_AGE = Gauge(
    "aisupport_job_oldest_todo_age_seconds", "How long the oldest due job has waited for a worker."
)
JOB_OUTCOMES = Counter("aisupport_job_outcomes", "Jobs run by this process's workers.", ["task", "outcome"])
EVENTS_WRITTEN = Counter("aisupport_events_written", "Events written to the outbox, by type.", ["type"])
EVENT_STREAMS = Gauge("aisupport_event_streams", "Realtime event streams open on this process.")
EVENT_STREAM_CLOSES = Counter(
    "aisupport_event_stream_closes", "Realtime streams the server ended, by reason.", ["reason"]
)
WEBHOOK_ATTEMPTS = Counter(
    "aisupport_webhook_attempts",
    "Webhook delivery attempts by outcome (succeeded, retrying, failed).",
    ["outcome"],
)
WEBHOOK_PENDING = Gauge(
    "aisupport_webhook_pending", "Webhook deliveries waiting to succeed (first tries and retries)."
)
WEBHOOK_OLDEST_PENDING_AGE = Gauge(
    "aisupport_webhook_oldest_pending_age_seconds", "Age of the oldest webhook delivery not yet delivered."
)
RATE_LIMIT_REJECTIONS = Counter("aisupport_rate_limit_rejections", "Requests refused by a limit.", ["limit"])
RATE_LIMIT_FALLBACK = Gauge(
    "aisupport_rate_limit_fallback", "1 while Redis is unreachable and limits are counted in this process."
)
REFRESH_TOKEN_REUSE = Counter(
    "aisupport_refresh_token_reuse", "Rotated refresh tokens presented again (their family was revoked)."
)
AI_REPLIES = Counter(
    "aisupport_ai_replies",
    "Replies the AI wrote, by feature (draft, answer) and method (extractive, provider).",
    ["feature", "method"],
)
AI_AUTO_OUTCOMES = Counter(
    "aisupport_ai_auto_outcomes",
    "Customer messages in `auto` inboxes: answered, or handed off (by reason).",
    ["outcome", "reason"],
)
AI_DRAFT_OUTCOMES = Counter(
    "aisupport_ai_draft_outcomes", "Drafts decided by agents: unchanged, edited, discarded.", ["outcome"]
)
AI_LATENCY = Histogram(
    "aisupport_ai_reply_seconds",
    "Time to write a reply (retrieval excluded), by method.",
    ["method"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AI_TOKENS = Counter("aisupport_ai_tokens", "Provider tokens used, by direction (in, out).", ["direction"])
AI_COST = Counter("aisupport_ai_cost_dollars", "What provider calls cost (US dollars, from the price table).")
LOGIN_FAILURES = Counter("aisupport_login_failures", "Sign-ins refused for a wrong email or password.")
PASSWORD_HASH_WAITING = Gauge(
    "aisupport_password_hash_waiting", "Sign-ins and sign-ups waiting for a password-hashing thread."
)
# When the oldest job still waiting became due: its scheduled time, or when it was deferred.
OLDEST_DUE_JOB = text(
    """
    SELECT min(coalesce(j.scheduled_at, e.at))
      FROM procrastinate_jobs j
      LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
     WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
    """
)
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted")


class InstrumentedPool(AsyncAdaptedQueuePool):
    """The default async pool, counting the checkouts in progress (waiting for a connection)."""

    _waiting = DB_POOL_CONNECTIONS.labels("waiting")

    def _do_get(self):  # type: ignore[no-untyped-def]
        self._waiting.inc()
        try:
            return super()._do_get()
        finally:
            self._waiting.dec()


async def read_database_gauges(engine: AsyncEngine, sessionmaker: async_sessionmaker) -> None:  # type: ignore[type-arg]
    pool = engine.pool
    if isinstance(pool, AsyncAdaptedQueuePool):
        DB_POOL_CONNECTIONS.labels("in_use").set(pool.checkedout())
        DB_POOL_CONNECTIONS.labels("idle").set(pool.checkedin())
        DB_POOL_SIZE.set(pool.size() + pool._max_overflow)
    async with sessionmaker() as db:
        rows = await db.execute(text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"))
        counts = {status: count for status, count in rows.all()}
        oldest = await db.scalar(OLDEST_DUE_JOB)
        pending, oldest_delivery = (await db.execute(text("SELECT * FROM webhook_backlog()"))).one()
    for status in JOB_STATUSES:
        JOBS.labels(status).set(counts.get(status, 0))
    now = datetime.now(UTC)
    JOB_OLDEST_TODO_AGE.set((now - oldest).total_seconds() if oldest else 0)
    WEBHOOK_PENDING.set(pending)
    WEBHOOK_OLDEST_PENDING_AGE.set((now - oldest_delivery).total_seconds() if oldest_delivery else 0)
