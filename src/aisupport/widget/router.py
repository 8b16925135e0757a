"""/widget/v1/inboxes/{inbox_id}/...: the customer widget's API (docs/widget.md). Every route but the
session's takes a visitor token; none takes a member's, and no member route takes a visitor's."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse

from aisupport.access.components import AccessComponents
from aisupport.access.dependencies import client_from
from aisupport.access.routes import public
from aisupport.access.tenancy import act_as
from aisupport.access.visitor import (
    CurrentVisitor,
    Visitor,
    hit_widget_ip_limit,
    visitor_again,
    visitor_tokens,
)
from aisupport.contacts.models import Contact
from aisupport.conversations import errors as conversation_errors
from aisupport.conversations.attachment_router import (
    DOWNLOAD_RESPONSES,
    UPLOAD_BODY,
    AppStorage,
    file_response,
    request_body,
)
from aisupport.core.config import Settings
from aisupport.core.db import DbSession, request_session
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging
from aisupport.events import repository as events
from aisupport.realtime import errors as realtime_errors
from aisupport.realtime.hub import Frame, sse_message
from aisupport.realtime.router import SSE_HEADERS, After, LastEventId
from aisupport.realtime.streaming import event_stream, position_of
from aisupport.storage import errors as storage_errors
from aisupport.widget import errors, repository, service
from aisupport.widget.schemas import (
    RatingIn,
    RatingView,
    SessionStart,
    VisitorAttachment,
    VisitorContact,
    VisitorConversation,
    VisitorConversationCreate,
    VisitorMessage,
    VisitorMessageCreate,
    VisitorSession,
    conversation_view,
    message_view,
)

PREFIX = "/widget/v1/inboxes/{inbox_id}"
UPLOAD_PATH = PREFIX + "/conversations/{conversation_id}/attachments"
router = APIRouter(tags=["widget"])


def _session(
    request: Request,
    visitor_id: uuid.UUID,
    verified: bool,
    contact: Contact,
    organization_id: uuid.UUID,
    inbox_id: uuid.UUID,
) -> VisitorSession:
    token, expires_at = visitor_tokens(request).issue(organization_id, inbox_id, visitor_id)
    return VisitorSession(
        visitor_token=token,
        expires_at=expires_at,
        visitor_id=visitor_id,
        verified=verified,
        contact=VisitorContact.model_validate(contact),
    )


@router.post(
    PREFIX + "/session",
    status_code=status.HTTP_201_CREATED,
    response_model=VisitorSession,
    responses=problem_responses(errors.IDENTITY_NOT_PROVEN, errors.ORIGIN_NOT_ALLOWED),
)
@public
async def start_session(
    inbox_id: uuid.UUID, payload: SessionStart, request: Request, db: DbSession
) -> VisitorSession:
    """Start a visitor's session in a widget inbox: anonymous with an empty body (a new contact, who
    sees only what this session starts), or verified by an identity proof signed with the inbox's
    identity secret (the contact with that `external_id`, and its history from any device). A claimed
    identity without a valid proof is refused (403), never matched to a contact."""
    await hit_widget_ip_limit(request)
    access: AccessComponents = request.app.state.auth
    address = client_from(request).ip or "unknown"
    await access.rate_limiter.hit(
        access.settings.rate_limits["widget_sessions_ip"], "widget-session-ip", address
    )
    found = await repository.widget_inbox(request.app.state.engine, inbox_id)
    if found is None:
        raise errors.inbox_not_found()
    organization_id, _ = found
    await act_as(db, organization_id=organization_id, user_id=None)
    started = await service.start_session(db, access.settings, organization_id, inbox_id, payload)
    visitor = started.visitor
    return _session(request, visitor.id, visitor.verified, started.contact, organization_id, inbox_id)


@router.post(PREFIX + "/session/refresh", response_model=VisitorSession)
async def refresh_session(
    inbox_id: uuid.UUID, visitor: CurrentVisitor, request: Request, db: DbSession
) -> VisitorSession:
    """A new visitor token for the same visitor, before theirs expires (an expired one starts over)."""
    contact = await service.renew(db, visitor)
    return _session(request, visitor.id, visitor.verified, contact, visitor.organization_id, inbox_id)


@router.get(PREFIX + "/conversations", response_model=Page[VisitorConversation])
async def list_visitor_conversations(
    inbox_id: uuid.UUID, visitor: CurrentVisitor, db: DbSession, paging: Paging
) -> Page[VisitorConversation]:
    """The visitor's conversations in this inbox, newest first."""
    rows = await service.list_conversations(
        db, visitor, before=paging.after_time_and_id(), limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row.created_at, row.id), VisitorConversation.model_validate)


@router.post(
    PREFIX + "/conversations",
    status_code=status.HTTP_201_CREATED,
    response_model=VisitorConversation,
    responses=problem_responses(errors.TOO_MANY_OPEN),
)
async def start_visitor_conversation(
    inbox_id: uuid.UUID,
    payload: VisitorConversationCreate,
    visitor: CurrentVisitor,
    db: DbSession,
    request: Request,
) -> VisitorConversation:
    """Start a conversation with its first message (409 past WIDGET_MAX_OPEN_CONVERSATIONS open ones)."""
    settings: Settings = request.app.state.settings
    created = await service.start_conversation(db, settings, visitor, payload.subject, payload.message.body)
    return VisitorConversation.model_validate(created)


@router.get(PREFIX + "/conversations/{conversation_id}", response_model=VisitorConversation)
async def get_visitor_conversation(
    inbox_id: uuid.UUID, conversation_id: uuid.UUID, visitor: CurrentVisitor, db: DbSession
) -> VisitorConversation:
    """One of the visitor's conversations (404 for any other)."""
    return VisitorConversation.model_validate(await service.conversation(db, visitor, conversation_id))


@router.get(PREFIX + "/conversations/{conversation_id}/messages", response_model=Page[VisitorMessage])
async def list_visitor_messages(
    inbox_id: uuid.UUID, conversation_id: uuid.UUID, visitor: CurrentVisitor, db: DbSession, paging: Paging
) -> Page[VisitorMessage]:
    """The conversation's messages, newest first: the customer's and the team's replies, never notes
    or internal activity."""
    rows, files = await service.list_messages(
        db, visitor, conversation_id, before=paging.after_time_and_id(), limit=paging.fetch
    )

    def item(row: Any) -> VisitorMessage:
        message = VisitorMessage.model_validate(row)
        message.attachments = [VisitorAttachment.model_validate(file) for file in files.get(row.id, [])]
        return message

    return paging.page(rows, lambda row: (row.created_at, row.id), item)


@router.post(
    PREFIX + "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=VisitorMessage,
    responses=problem_responses(conversation_errors.UNUSABLE_ATTACHMENT),
)
async def post_visitor_message(
    inbox_id: uuid.UUID,
    conversation_id: uuid.UUID,
    payload: VisitorMessageCreate,
    visitor: CurrentVisitor,
    db: DbSession,
) -> VisitorMessage:
    """Add the visitor's message, with their uploads to the conversation attached in the order given
    (a resolved or snoozed conversation opens again)."""
    message, files = await service.post_message(
        db, visitor, conversation_id, payload.body, payload.attachment_ids
    )
    answer = VisitorMessage.model_validate(message)
    answer.attachments = [VisitorAttachment.model_validate(file) for file in files]
    return answer


@router.post(
    UPLOAD_PATH,
    status_code=status.HTTP_201_CREATED,
    response_model=VisitorAttachment,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses=problem_responses(
        conversation_errors.ATTACHMENT_TOO_LARGE,
        storage_errors.MULTIPART_REQUIRED,
        storage_errors.MALFORMED_MULTIPART,
        storage_errors.BAD_UPLOAD,
        storage_errors.STORAGE_UNAVAILABLE,
    ),
)
async def upload_visitor_attachment(
    inbox_id: uuid.UUID,
    conversation_id: uuid.UUID,
    visitor: CurrentVisitor,
    db: DbSession,
    storage: AppStorage,
    request: Request,
) -> VisitorAttachment:
    """Upload one file (`multipart/form-data`, one part named `file`); a message of the visitor
    attaches it with `attachment_ids`."""
    settings: Settings = request.app.state.settings
    attachment = await service.upload(
        db,
        visitor,
        storage,
        conversation_id,
        content_type=request.headers.get("content-type"),
        body=request_body(request),
        max_bytes=settings.ATTACHMENT_MAX_BYTES,
    )
    return VisitorAttachment.model_validate(attachment)


@router.get(UPLOAD_PATH + "/{attachment_id}", response_class=StreamingResponse, responses=DOWNLOAD_RESPONSES)
async def download_visitor_attachment(
    inbox_id: uuid.UUID,
    conversation_id: uuid.UUID,
    attachment_id: uuid.UUID,
    visitor: CurrentVisitor,
    db: DbSession,
    storage: AppStorage,
) -> StreamingResponse:
    """A file of a message of the conversation (or the visitor's own upload), as an attachment."""
    return file_response(await service.download(db, visitor, storage, conversation_id, attachment_id))


@router.put(
    PREFIX + "/conversations/{conversation_id}/rating",
    response_model=RatingView,
    responses=problem_responses(conversation_errors.NOT_RESOLVED),
)
async def rate_conversation(
    inbox_id: uuid.UUID, conversation_id: uuid.UUID, payload: RatingIn, visitor: CurrentVisitor, db: DbSession
) -> RatingView:
    """Rate a resolved conversation, 1 to 5 with an optional comment; rated again, it is replaced."""
    rating = await service.rate(db, visitor, conversation_id, payload.score, payload.comment)
    return RatingView.model_validate(rating)


@router.get(
    PREFIX + "/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The visitor's events (docs/widget.md)."},
        **problem_responses(realtime_errors.BAD_POSITION),
    },
)
async def stream_visitor_events(
    inbox_id: uuid.UUID,
    visitor: CurrentVisitor,
    request: Request,
    last_event_id: LastEventId = None,
    after: After = None,
) -> StreamingResponse:
    """The visitor's own events over SSE: their conversations started and changing status, and their
    messages (the team's replies, never notes or activity); resumable with `Last-Event-ID`."""
    position = position_of(last_event_id, after)
    settings: Settings = request.app.state.settings
    async with request_session(request) as db:
        visible = await repository.visible_conversation_ids(db, visitor)

    async def view(frame: Frame) -> bytes | None:
        event = frame.event
        if event.private or event.conversation_id is None:
            return None
        if event.conversation_id not in visible and _may_be_theirs(visitor, frame):
            async with request_session(request) as db:
                visible.update(await repository.visible_conversation_ids(db, visitor))
        if event.conversation_id not in visible:
            return None
        if event.type == "message.created":
            data = {"message": message_view(event.payload["message"])}
        elif event.type in ("conversation.created", "conversation.status_changed"):
            data = {"conversation": conversation_view(event.payload["conversation"])}
        else:
            return None
        envelope = {**events.envelope(event), "data": data}
        return sse_message(event.sequence, event.type, envelope)

    async def recheck() -> bool:
        return await visitor_again(request) is not None

    stream = await event_stream(
        request, visitor.organization_id, position, view, recheck, settings.STREAM_HEARTBEAT_SECONDS
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


def _may_be_theirs(visitor: Visitor, frame: Frame) -> bool:
    """A new conversation of the visitor's contact in their inbox (whether theirs, the database says)."""
    if frame.type != "conversation.created":
        return False
    shown: dict[str, str] = frame.event.payload["conversation"]
    return shown["contact_id"] == str(visitor.contact_id) and shown["inbox_id"] == str(visitor.inbox_id)
