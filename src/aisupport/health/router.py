"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from aisupport.auth.dependencies import public
from aisupport.core.errors import problem_response, problem_responses

router = APIRouter(prefix="/health", tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/live", dependencies=[Depends(public)])
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/ready", dependencies=[Depends(public)], responses=problem_responses(503))
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
