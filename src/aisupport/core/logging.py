"""Structured logs: JSON in production, readable in development, one line per request.

A redaction step drops any value under a sensitive key, so a password, token, cookie or
Authorization header cannot reach a log line even by mistake.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aisupport.core.errors import problem_response
from aisupport.core.metrics import HTTP_DURATION, HTTP_REQUESTS
from aisupport.core.tracing import add_trace_id

SENSITIVE_KEY = re.compile(r"pass(word)?|secret|token|cookie|authorization|api[-_]?key|csrf", re.IGNORECASE)
REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def redact_sensitive(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and SENSITIVE_KEY.search(key):
            event[key] = "[redacted]"
    return event


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive,
    ]
    # Tracebacks without local variables in both formats: locals hold request headers (Authorization,
    # Cookie), and rendering them took seconds per error (structlog's default uses rich, with locals).
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    tail: list[Any] = [structlog.processors.format_exc_info, renderer] if json else [renderer]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Looked up per logger, so a redirected sys.stderr (tests, daemons) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Other libraries' records (uvicorn, alembic) go through the same processors and renderer.
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # uvicorn's own access log would repeat ours without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    # Seven lines about alembic's internals at every start; its migration lines stay.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


class RequestLogMiddleware:
    """Assigns a request id (echoed in `X-Request-ID`) and logs one line per request.

    An exception no handler took is answered here (a 500 problem) and logged once, with its traceback
    and the request id: it does not travel on to Starlette's and uvicorn's handlers, which would log
    it twice more.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("aisupport.request")
        self.errors = structlog.get_logger("aisupport.errors")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            self.errors.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            if started_response:
                return  # the answer is cut short; the client sees an incomplete response
            response = problem_response(500, "internal_error", "An unexpected error occurred.")
            await response(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            route = getattr(scope.get("route"), "path", None)
            duration = time.perf_counter() - started
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(duration * 1000, 2),
                client_ip=client[0] if client else None,
            )
            # Unknown paths share one label, so scanners cannot grow the metric without bound.
            labels = (scope["method"], route or "unmatched")
            HTTP_REQUESTS.labels(*labels, str(status)).inc()
            HTTP_DURATION.labels(*labels).observe(duration)
            structlog.contextvars.clear_contextvars()


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.match(candidate) else None
    return None
