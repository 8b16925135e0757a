"""CORS for the widget's routes: exactly the origins the inbox of the path allows (`allowed_origins`),
read through `widget_inbox()` and kept WIDGET_ORIGINS_CACHE_SECONDS per process. A browser from another
origin is refused (403 problem, without CORS headers); requests without `Origin` (servers, mobile apps)
are not browsers' and pass. No credentials: visitors send their token in `Authorization`, never a
cookie, so no other site can ride on them."""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aisupport.core.errors import problem_response
from aisupport.widget import repository

PATH = re.compile(r"^/widget/v1/inboxes/([0-9a-fA-F-]{36})(/|$)")
ORIGINS_CACHE_SECONDS = 30.0
ALLOW_METHODS = "GET, POST, PUT, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Request-ID"
EXPOSE_HEADERS = "X-Request-ID, Retry-After"
MAX_AGE = "600"


class WidgetCORS:
    """Wraps the app for requests under /widget/ that carry an `Origin`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._origins: dict[uuid.UUID, tuple[float, frozenset[str] | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        origin = headers["origin"]
        match = PATH.match(scope["path"])
        allowed = await self._allowed(scope, match.group(1)) if match else None
        if allowed is None:  # no such widget inbox: the route answers (404), without CORS headers
            await self.app(scope, receive, send)
            return
        if origin not in allowed:
            response = problem_response(
                403, "origin_not_allowed", "This inbox's widget is not allowed on this origin."
            )
            await response(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin",
            }
            await _empty(scope, receive, send, preflight)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _allowed(self, scope: Scope, inbox: str) -> frozenset[str] | None:
        try:
            inbox_id = uuid.UUID(inbox)
        except ValueError:
            return None
        now = time.monotonic()
        kept = self._origins.get(inbox_id)
        if kept is not None and kept[0] > now:
            return kept[1]
        found = await repository.widget_inbox(scope["app"].state.engine, inbox_id)
        allowed = None if found is None else frozenset(found[1])
        if len(self._origins) > 10_000:  # bounded: inboxes seen are many only under a scan
            self._origins.clear()
        self._origins[inbox_id] = (now + ORIGINS_CACHE_SECONDS, allowed)
        return allowed


async def _empty(scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": b""})
