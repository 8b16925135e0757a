"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from aisupport.access.routes import public
from aisupport.core.config import Settings
from aisupport.core.errors import answers, problem_response
from aisupport.core.metrics import read_database_gauges
from aisupport.health import errors

router = APIRouter(prefix="/health", tags=["health"])
metrics_router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/live")
@public
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/ready")
@public
async def ready(request: Request) -> JSONResponse:
    """The database (and Redis, when configured) answer: ready to take traffic."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unavailable"
    redis = request.app.state.redis
    if redis is not None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await redis.ping()
            checks["redis"] = "ok"
        except Exception:
            checks["redis"] = "unavailable"
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        return problem_response(503, "not_ready", f"Unavailable: {', '.join(failing)}.")
    return JSONResponse({"status": "ok", "checks": checks})


@answers(errors.WRONG_METRICS_TOKEN, errors.METRICS_NOT_SERVED)
async def require_metrics_access(request: Request) -> None:
    settings: Settings = request.app.state.settings
    token = settings.METRICS_TOKEN
    if token is None:
        if settings.ENV == "prod":
            raise errors.metrics_not_served()
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
        raise errors.wrong_metrics_token()


@metrics_router.get(
    "/metrics",
    dependencies=[Depends(require_metrics_access)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
@public
async def metrics(request: Request) -> Response:
    """Prometheus metrics (bearer METRICS_TOKEN when it is set)."""
    await read_database_gauges(request.app.state.engine, request.app.state.sessionmaker)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
