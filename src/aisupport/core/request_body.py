"""Routes that take JSON refuse other media types with 415 (FastAPI alone would answer 422)."""

from __future__ import annotations

from email.message import Message

from fastapi import Request, params

from aisupport.core.errors import AppError


def _takes_json(route: object) -> bool:
    body_field = getattr(route, "body_field", None)
    return body_field is not None and not isinstance(body_field.field_info, params.Form)


def _is_json(content_type: str) -> bool:
    message = Message()
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
