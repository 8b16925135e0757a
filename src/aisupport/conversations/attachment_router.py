"""/orgs/{org_id}/conversations/{conversation_id}/attachments: files uploaded to a conversation, then
attached to a message (`attachment_ids` of POST .../messages), and downloaded."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from aisupport.access.dependencies import requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.conversations import attachment_service as service
from aisupport.conversations import errors
from aisupport.conversations.conversation_schemas import AttachmentOut
from aisupport.core.config import Settings
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.uploads import MalformedMultipart
from aisupport.storage import Storage
from aisupport.storage import errors as storage_errors

router = APIRouter(tags=["conversations"])

UPLOAD_PATH = "/orgs/{org_id}/conversations/{conversation_id}/attachments"
# What a multipart body may hold besides the file: boundaries and the part's headers.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

Reader = Annotated[Principal, Depends(requires(Permission.CONVERSATIONS_READ))]
Worker = Annotated[Principal, Depends(requires(Permission.CONVERSATIONS_WORK))]


def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


AppStorage = Annotated[Storage, Depends(_storage)]

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The file, with its name (and its type, else "
                        "`application/octet-stream`). Not empty; at most `ATTACHMENT_MAX_BYTES`.",
                    }
                },
                "additionalProperties": False,
            }
        }
    },
}


async def request_body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise MalformedMultipart from None  # nobody is left to answer; nothing is stored


@router.post(
    UPLOAD_PATH,
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentOut,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses=problem_responses(
        errors.ATTACHMENT_TOO_LARGE,
        storage_errors.MULTIPART_REQUIRED,
        storage_errors.MALFORMED_MULTIPART,
        storage_errors.BAD_UPLOAD,
        storage_errors.STORAGE_UNAVAILABLE,
    ),
)
async def upload_attachment(
    org_id: uuid.UUID,
    conversation_id: uuid.UUID,
    principal: Worker,
    db: DbSession,
    storage: AppStorage,
    request: Request,
) -> AttachmentOut:
    """Upload one file (`multipart/form-data`, one part named `file`) to the conversation, streamed to
    storage; a message attaches it with `attachment_ids`. Uploads no message names within 24 hours are
    deleted."""
    settings: Settings = request.app.state.settings
    attachment = await service.upload(
        db,
        principal,
        storage,
        conversation_id,
        content_type=request.headers.get("content-type"),
        body=request_body(request),
        max_bytes=settings.ATTACHMENT_MAX_BYTES,
    )
    return AttachmentOut.model_validate(attachment)


DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, as an attachment (never shown inline), with its stored type if "
        "that type is inert (images, audio, video, plain text...), else `application/octet-stream`.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    **problem_responses(storage_errors.STORAGE_UNAVAILABLE),
}


@router.get(
    UPLOAD_PATH + "/{attachment_id}",
    response_class=StreamingResponse,
    responses=DOWNLOAD_RESPONSES,
)
async def download_attachment(
    org_id: uuid.UUID,
    conversation_id: uuid.UUID,
    attachment_id: uuid.UUID,
    principal: Reader,
    db: DbSession,
    storage: AppStorage,
) -> StreamingResponse:
    """The file, streamed, with `Content-Disposition: attachment` and its name. Sent with its type,
    except types a browser would run or render as a page (HTML, SVG, XML, scripts, PDF...), which
    go as `application/octet-stream`; always with `X-Content-Type-Options: nosniff`."""
    return file_response(await service.download(db, principal, storage, conversation_id, attachment_id))


def file_response(download: service.Download) -> StreamingResponse:
    """A download, streamed as an attachment that no browser runs or renders as a page."""
    return StreamingResponse(
        download.content,
        headers={  # the type as it is: Starlette would add a charset to text/* that nobody declared
            "Content-Type": download.content_type,
            "Content-Length": str(download.attachment.size),
            "Content-Disposition": download.disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-cache",
        },
    )
