"""create_app(): settings, middleware, error handlers, routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from starlette.routing import compile_path
from starlette.types import ASGIApp

from aisupport.access.cache import PRINCIPALS, PrincipalCache, Principals
from aisupport.ai.router import router as ai_router
from aisupport.auth.account_router import router as account_router
from aisupport.auth.router import AUTH_MAX_BODY_BYTES, invitations_router
from aisupport.auth.router import router as auth_router
from aisupport.auth.service import AuthComponents
from aisupport.contacts.router import router as contacts_router
from aisupport.conversations.attachment_router import MULTIPART_OVERHEAD_BYTES, UPLOAD_PATH
from aisupport.conversations.attachment_router import router as attachment_router
from aisupport.conversations.conversation_router import router as conversation_router
from aisupport.conversations.router import router as conversations_router
from aisupport.conversations.tag_router import router as tag_router
from aisupport.core import tracing
from aisupport.core.api_docs import install_api_docs
from aisupport.core.config import Settings
from aisupport.core.cors import ProblemCORSMiddleware
from aisupport.core.db import create_sessionmaker, engine_for
from aisupport.core.embedded import start_embedded_postgres
from aisupport.core.errors import install_error_handlers
from aisupport.core.jobs import jobs, run_worker
from aisupport.core.logging import configure_logging
from aisupport.core.middleware import ServiceMiddleware, json_body_routes
from aisupport.core.ratelimit import RateLimiter
from aisupport.core.redis import create_redis, create_subscriber
from aisupport.core.security import AccessTokenCodec, PasswordHasher
from aisupport.core.tenancy import app_database_url, refuse_privileged_role
from aisupport.health.router import metrics_router
from aisupport.health.router import router as health_router
from aisupport.knowledge.help_router import router as help_router
from aisupport.knowledge.router import DOCUMENTS_PATH
from aisupport.knowledge.router import router as knowledge_router
from aisupport.mail.delivery import worker_context
from aisupport.openapi import install_problem_documentation, operation_id
from aisupport.organizations.router import router as organizations_router
from aisupport.realtime.hub import EventHub
from aisupport.realtime.router import router as realtime_router
from aisupport.storage import create_storage
from aisupport.webhooks.router import router as webhooks_router
from aisupport.widget.cors import WidgetCORS
from aisupport.widget.router import UPLOAD_PATH as WIDGET_UPLOAD_PATH
from aisupport.widget.router import router as widget_router

log = structlog.get_logger("aisupport")

# The modules whose tasks the job queue runs (procrastinate imports them in every worker).
TASK_MODULES = (
    "aisupport.auth.tasks",
    "aisupport.organizations.tasks",
    "aisupport.conversations.tasks",
    "aisupport.events.tasks",
    "aisupport.webhooks.tasks",
    "aisupport.knowledge.tasks",
    "aisupport.ai.tasks",
)
jobs.import_paths = list(TASK_MODULES)

# Every route of the API comes from one of these (a test checks each declares its access).
ROUTERS = (
    health_router,
    metrics_router,
    auth_router,
    account_router,
    invitations_router,
    organizations_router,
    conversations_router,
    contacts_router,
    conversation_router,
    tag_router,
    attachment_router,
    realtime_router,
    webhooks_router,
    widget_router,
    knowledge_router,
    help_router,
    ai_router,
)


GC_THRESHOLDS = (100_000, 20, 100)

_embedded_urls: dict[Path, str] = {}


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded one (started on demand) when DATABASE_URL is unset."""
    if settings.DATABASE_URL:
        return settings.DATABASE_URL
    pgdata = settings.EMBEDDED_PGDATA
    if pgdata not in _embedded_urls:
        # A first start (initdb) takes seconds: say what is happening.
        log.info("starting_embedded_postgresql", pgdata=str(pgdata))
        started = time.perf_counter()
        _embedded_urls[pgdata] = start_embedded_postgres(pgdata)
        log.info("embedded_postgresql_ready", seconds=round(time.perf_counter() - started, 2))
    return _embedded_urls[pgdata]


def open_cors(app: ASGIApp) -> ASGIApp:
    """CORS for the public help centre: readable from any page, never with credentials."""
    return ProblemCORSMiddleware(
        app,
        allow_origins=["*"],
        allow_methods=["GET"],
        allow_headers=["Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(json=settings.ENV == "prod", level=settings.LOG_LEVEL)
    tracing.configure_tracing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings, app_database_url(settings, database_url(settings)))
        tracing.instrument_engine(engine, settings)
        await refuse_privileged_role(engine)
        redis = create_redis(settings.REDIS_URL) if settings.REDIS_URL else None
        subscriber = create_subscriber(settings.REDIS_URL) if settings.REDIS_URL else None
        limiter = RateLimiter(settings.REDIS_URL, settings.RATE_LIMIT_KEY_PREFIX)
        principals = Principals(
            PrincipalCache(settings.SESSION_CACHE_TTL_SECONDS),
            redis,
            subscriber,
            channel=f"{settings.RATE_LIMIT_KEY_PREFIX}:principal-evictions",
        )
        listener = asyncio.create_task(principals.listen()) if subscriber is not None else None
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine, info={PRINCIPALS: principals})
        app.state.redis = redis
        app.state.storage = create_storage(settings)
        passwords = PasswordHasher(settings)
        app.state.auth = AuthComponents(
            settings=settings,
            passwords=passwords,
            access_tokens=AccessTokenCodec(settings),
            rate_limiter=limiter,
            principals=principals,
        )
        conninfo = make_url(app_database_url(settings, database_url(settings))).set(drivername="postgresql")
        hub = EventHub(
            conninfo.render_as_string(hide_password=False),
            app.state.sessionmaker,
            settings.STREAM_BUFFER_EVENTS,
        )
        await hub.start()
        app.state.event_hub = hub
        if redis is None:
            log.info("rate_limiting_in_process", reason="REDIS_URL is unset; counters are per process")
        else:
            log.info("rate_limiting_on_redis")
        worker = None
        if settings.run_worker_in_process:
            worker = asyncio.create_task(run_worker(settings, engine, context=worker_context(settings)))
            log.info("job_worker_in_process", reason="RUN_WORKER_IN_PROCESS or the embedded database")
        # Everything built at start-up lives as long as the process: keep it out of the cyclic garbage
        # collector's scans, which otherwise walk the whole heap on every full collection.
        gc.collect()
        gc.freeze()
        # And collect young garbage every 100,000 allocations rather than 700: a busy process allocates
        # millions a second, and each collection at the default pace promoted objects toward the full
        # collections that walk every stream's objects (1,000 streams: the p99 from 134 to 33 ms,
        # decision 0047). Garbage without cycles is freed at once whatever this says.
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()  # procrastinate lets running jobs finish (WORKER_SHUTDOWN_SECONDS)
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await hub.stop()
            await principals.stop(listener)
            await app.state.storage.aclose()
            passwords.close()
            tracing.flush()
            for client in (redis, subscriber):
                if client is not None:
                    await client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="aisupport",
        summary="Multi-tenant backend API for AI-assisted customer support.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs, without a CDN
        redoc_url=None,
        # Operation ids are the handlers' names (`login`, `list_members`): what generated clients call.
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    install_error_handlers(app)
    tracing.instrument_app(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    install_api_docs(app)  # after the API's routes: every request is matched against them first
    install_problem_documentation(app)

    app.add_middleware(
        ServiceMiddleware,
        trusted_proxies=settings.FORWARDED_ALLOW_IPS,
        cors={
            "allow_origins": settings.CORS_ORIGINS,
            "allow_credentials": True,
            "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "allow_headers": [
                "Authorization",
                "Content-Type",
                "X-CSRF-Token",
                "X-Request-ID",
                "If-Match",
                "Idempotency-Key",
            ],
            "expose_headers": ["X-Request-ID", "Retry-After", "ETag", "Idempotent-Replayed"],
        },
        default_body_limit=settings.MAX_BODY_BYTES,
        body_limits={"/auth/": AUTH_MAX_BODY_BYTES},
        max_json_depth=settings.MAX_JSON_DEPTH,
        route_body_limits=[
            (compile_path(path)[0], settings.ATTACHMENT_MAX_BYTES + MULTIPART_OVERHEAD_BYTES)
            for path in (UPLOAD_PATH, WIDGET_UPLOAD_PATH)
        ]
        + [
            (
                compile_path(DOCUMENTS_PATH)[0],
                settings.KNOWLEDGE_DOCUMENT_MAX_BYTES + MULTIPART_OVERHEAD_BYTES,
            )
        ],
        cors_by_prefix=[("/widget/", WidgetCORS), ("/help/", open_cors)],
        json_routes=json_body_routes(route for router in ROUTERS for route in router.routes),
    )
    return app
