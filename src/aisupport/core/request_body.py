"""Request bodies: a size limit (413), a JSON depth limit (422) and JSON only where JSON is expected (415)."""

from __future__ import annotations

import email.message

from fastapi import Request, params
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aisupport.core.errors import AppError, problem_response
from aisupport.core.json_limits import json_text_depth


def _takes_json(route: object) -> bool:
    body_field = getattr(route, "body_field", None)
    return body_field is not None and not isinstance(body_field.field_info, params.Form)


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def require_json_body(request: Request) -> None:
    if not _takes_json(request.scope.get("route")):
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if has_body and not _is_json(request.headers.get("content-type", "")):
        raise AppError(415, "unsupported_media_type", "Send the request body as application/json.")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimitsMiddleware:
    """Bounds every request body before anything parses it: its size (413) and, for JSON, its depth (422).

    Size: by Content-Length up front, else by counting streamed chunks. `limits` maps path prefixes to
    byte limits (the longest matching prefix wins) over `default`. Starlette's own limiter answers in
    plain text, so the API keeps this one to answer in problem+json.
    Depth: a JSON body is read whole (it is within the size limit, and the app reads it whole anyway)
    and measured without parsing; deeper than `max_json_depth` is refused, so json.loads, validation and
    serialisation (all recursive) never see it.
    """

    def __init__(self, app: ASGIApp, *, default: int, limits: dict[str, int], max_json_depth: int) -> None:
        self.app = app
        self.default = default
        self.limits = sorted(limits.items(), key=lambda item: len(item[0]), reverse=True)
        self.max_json_depth = max_json_depth

    def _limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        if _is_json(headers.get("content-type", "")):
            await self._json_request(scope, receive, send, limit)
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

        await self.app(scope, counting_receive, send)

    async def _json_request(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
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
            response = problem_response(422, "validation_error", detail, errors=[error])
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _too_large(limit: int) -> Response:
    return problem_response(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
