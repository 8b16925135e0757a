"""The service's one ASGI middleware: everything every request needs before and after the app, in one pass.

In order: the client address behind a trusted proxy; a request id (echoed in `X-Request-ID`, bound to
every log line); the body's bounds (size 413, JSON depth 422, JSON where the route takes JSON 415);
CORS, only for requests that carry an `Origin`; then, once answered, one log line and the request
metrics. An exception no handler took is answered here (a 500 problem) and logged once, with its
traceback and the request id: it does not travel on to Starlette's and uvicorn's handlers, which would
log it twice more.

One middleware instead of five: each layer costs every request a coroutine, a `send` wrapper and a
header scan, and most of them have nothing to do for most requests (decision 0031).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import structlog
from fastapi import params
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from aisupport.core.cors import ProblemCORSMiddleware
from aisupport.core.errors import problem_response
from aisupport.core.json_limits import json_text_depth
from aisupport.core.metrics import RequestMetrics

REQUEST_ID_HEADER = b"x-request-id"
HEADERS = "aisupport.headers"  # the request's headers as a dict, read once, kept in the scope
_SAFE_REQUEST_ID = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    """The proxy-header step only rewrites the scope; the rest of the work is ours."""


class ServiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Sequence[str],
        cors: dict[str, Any],
        default_body_limit: int,
        body_limits: dict[str, int],
        max_json_depth: int,
        route_body_limits: Sequence[tuple[re.Pattern[str], int]] = (),
        json_routes: list[tuple[frozenset[str], re.Pattern[str]]],
        cors_by_prefix: Sequence[tuple[str, Callable[[ASGIApp], ASGIApp]]] = (),
    ) -> None:
        self.app = app
        self.json_routes = json_routes
        # CORS wraps the body checks too, so a browser can read the 413, 415 or 422 they answer.
        self.cors_app = ProblemCORSMiddleware(self._checked, **cors)
        # Paths with CORS of their own (the widget's: each inbox's origins), instead of CORS_ORIGINS.
        self.cors_by_prefix = [(prefix, wrap(self._checked)) for prefix, wrap in cors_by_prefix]
        self.proxy: Any = ProxyHeadersMiddleware(cast(Any, _nothing), trusted_hosts=list(trusted_proxies))
        self.default_body_limit = default_body_limit
        self.body_limits = sorted(body_limits.items(), key=lambda item: len(item[0]), reverse=True)
        # Routes whose bodies are files (their own, larger limit), matched before the prefixes.
        self.route_body_limits = list(route_body_limits)
        self.max_json_depth = max_json_depth
        self.log = structlog.get_logger("aisupport.request")
        # Decided once: building a line that the level then drops costs every request.
        self.log_requests = self.log.is_enabled_for(logging.INFO)
        self.errors = structlog.get_logger("aisupport.errors")
        self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope[HEADERS] = _headers_of(scope)
        if b"x-forwarded-for" in headers or b"x-forwarded-proto" in headers:
            await self.proxy(scope, receive, send)
        request_id = _safe_request_id(headers.get(REQUEST_ID_HEADER)) or os.urandom(16).hex()
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        app = self._cors_for(scope["path"]) if b"origin" in headers else self._checked
        try:
            await app(scope, receive, send_with_id)
        except Exception:
            self.errors.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            if not started_response:
                response = problem_response(500, "internal_error", "An unexpected error occurred.")
                await response(scope, receive, send_with_id)
            # else the answer is cut short; the client sees an incomplete response
        finally:
            duration = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            if self.log_requests:
                self.log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                    client_ip=scope["client"][0] if scope.get("client") else None,
                )
            self.metrics.observe(scope["method"], route, status, duration)
            structlog.contextvars.reset_contextvars(**bound)

    def _cors_for(self, path: str) -> ASGIApp:
        for prefix, app in self.cors_by_prefix:
            if path.startswith(prefix):
                return app
        return self.cors_app

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, behind the body's bounds: size (413), JSON depth (422), JSON where the route takes
        JSON (415), checked before anything parses the body."""
        app = self.app
        headers: dict[bytes, bytes] = scope[HEADERS]
        if b"content-length" not in headers and b"transfer-encoding" not in headers:
            await app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        if declared == b"0":
            await app(scope, receive, send)
            return
        if _is_json(headers.get(b"content-type", b"")):
            await self._json_body(app, scope, receive, send, limit)
            return
        if any(
            scope["method"] in methods and path.match(scope["path"]) for methods, path in self.json_routes
        ):
            response = problem_response(
                415, "unsupported_media_type", "Send the request body as application/json."
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await app(scope, counting_receive, send)

    async def _json_body(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        # Read whole (it is within the size limit, and the app reads it whole anyway), measured without
        # parsing: deeper than the limit never reaches json.loads, validation or serialisation.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending the whole body: no one to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _too_large(limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_text_depth(body) > self.max_json_depth:
            detail = f"The JSON body nests deeper than {self.max_json_depth} levels."
            error = {"loc": ["body"], "msg": detail, "type": "json_too_deep"}
            await problem_response(422, "validation_error", detail, errors=[error])(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    def _limit_for(self, path: str) -> int:
        for pattern, limit in self.route_body_limits:
            if pattern.match(path):
                return limit
        limits = (limit for prefix, limit in self.body_limits if path.startswith(prefix))
        return next(limits, self.default_body_limit)


class BodyTooLarge(HTTPException):
    """A streamed body grew past the limit: answered 413 by the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def _headers_of(scope: Scope) -> dict[bytes, bytes]:
    # The first value of each header: what every check here reads.
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    return headers


def _safe_request_id(value: bytes | None) -> str | None:
    if value is None or not 1 <= len(value) <= 128:
        return None
    text = value.decode("latin-1")
    return text if all(char in _SAFE_REQUEST_ID for char in text) else None


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    main, _, subtype = media_type.partition(b"/")
    return main == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


def json_body_routes(routes: Iterable[object]) -> list[tuple[frozenset[str], re.Pattern[str]]]:
    """(methods, path pattern) of the routes that read a JSON body (not a form), for the 415 check."""
    found = []
    for route in routes:
        body_field = getattr(route, "body_field", None)
        if body_field is not None and not isinstance(body_field.field_info, params.Form):
            found.append((frozenset(getattr(route, "methods", ())), route.path_regex))  # type: ignore[attr-defined]
    return found


def _too_large(limit: int) -> Any:
    return problem_response(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
