"""/orgs/{org_id}/conversations: conversations with contacts, and their messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from aisupport.access.dependencies import requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.conversations import conversation_service as service
from aisupport.conversations import errors, idempotency
from aisupport.conversations.conversation_repository import ConversationFilters, Listed
from aisupport.conversations.conversation_schemas import (
    SEARCH_MAX,
    TAGS_MAX,
    AttachmentOut,
    ConversationCreate,
    ConversationOut,
    ConversationUpdate,
    ListedConversation,
    MessageCreate,
    MessageOut,
    RatingOut,
    SortOrder,
    Status,
    Tag,
    listed_json,
    message_json,
)
from aisupport.conversations.idempotency import KeyHeader, Stored
from aisupport.conversations.models import Conversation, Message, MessageAttachment
from aisupport.conversations.schemas import Priority
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging
from aisupport.core.schemas import Timestamp

router = APIRouter(tags=["conversations"])

Reader = Annotated[Principal, Depends(requires(Permission.CONVERSATIONS_READ))]
Worker = Annotated[Principal, Depends(requires(Permission.CONVERSATIONS_WORK))]
IfMatch = Annotated[
    str | None,
    Header(
        pattern=r'^(\*|(W/)?"[0-9]{1,9}")$',
        description='The ETag read (`"<version>"`): the change is made only if the conversation is still '
        "at that version (412 otherwise). Without it, the change is made whatever the version.",
    ),
]


HEX = "[0-9a-fA-F]"
ASSIGNEE_PATTERN = f"^(me|unassigned|{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}})$"


def _etag(conversation: Conversation) -> str:
    return f'"{conversation.version}"'


def _version(if_match: str | None) -> int | None:
    """The version an If-Match names; `*` (any) is None; anything else unreadable can match nothing."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit() or len(tag) > 9:
        raise errors.precondition_failed()
    return int(tag)


def _with_etag(response: Response, conversation: Conversation) -> ConversationOut:
    response.headers["ETag"] = _etag(conversation)
    return ConversationOut.model_validate(conversation)


async def _claim(
    db: DbSession, principal: Principal, request: Request, body: dict[str, object], key: str | None
) -> Stored | None:
    if key is None:
        return None
    digest = idempotency.request_hash(f"{request.method} {request.url.path}", body)
    return await idempotency.claim(db, principal.organization_id, key, digest)


async def _store(db: DbSession, principal: Principal, key: str | None, answer: BaseModel) -> None:
    if key is not None:
        body = answer.model_dump(mode="json")
        await idempotency.store(db, principal.organization_id, key, status.HTTP_201_CREATED, body)


def _replayed(stored: Stored, etag: str | None = None) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true", **({"ETag": etag} if etag else {})}
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


def _after(paging: Paging) -> tuple[datetime, uuid.UUID] | None:
    return paging.after_time_and_id()


@router.post(
    "/orgs/{org_id}/conversations",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversationOut,
    responses=problem_responses(errors.UNKNOWN_CONVERSATION_REFERENCE, errors.IDEMPOTENCY_KEY_REUSED),
)
async def create_conversation(
    org_id: uuid.UUID,
    payload: ConversationCreate,
    principal: Worker,
    db: DbSession,
    request: Request,
    response: Response,
    idempotency_key: KeyHeader = None,
) -> ConversationOut | JSONResponse:
    """Open a conversation with a contact in an inbox, numbered next in the organization (1, 2, ...),
    with an optional first message. Honours `Idempotency-Key`."""
    replay = await _claim(db, principal, request, payload.model_dump(mode="json"), idempotency_key)
    if replay is not None:
        return _replayed(replay, etag=f'"{replay.body.get("version")}"')
    fields = payload.model_dump(exclude={"message"})
    first = payload.message.model_dump() if payload.message is not None else None
    conversation = await service.create_conversation(db, principal, fields, first)
    answer = _with_etag(response, conversation)
    await _store(db, principal, idempotency_key, answer)
    return answer


@router.get(
    "/orgs/{org_id}/conversations",
    response_model=Page[ListedConversation],
    responses=problem_responses(errors.BAD_LIST_REQUEST),
)
async def list_conversations(
    org_id: uuid.UUID,
    principal: Reader,
    db: DbSession,
    paging: Paging,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    assignee: Annotated[
        str | None,
        Query(pattern=ASSIGNEE_PATTERN, description="A member's user id, `me` or `unassigned`."),
    ] = None,
    inbox_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    tag: Annotated[
        list[Tag] | None,
        Query(max_length=TAGS_MAX, description="Repeated: conversations with every one of these tags."),
    ] = None,
    priority: Priority | None = None,
    created_after: Annotated[Timestamp | None, Query(description="Created at or after.")] = None,
    created_before: Annotated[Timestamp | None, Query(description="Created before.")] = None,
    updated_after: Annotated[Timestamp | None, Query(description="Last changed at or after.")] = None,
    updated_before: Annotated[Timestamp | None, Query(description="Last changed before.")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=SEARCH_MAX,
            description="Full-text search of the subject, the messages (notes included) and the contact's "
            'name and email: words (all of them), "a phrase", -excluded, `or`. See docs/inbox.md.',
        ),
    ] = None,
    sort: Annotated[
        SortOrder, Query(description="`last_activity` (newest first) or `relevance` (with `q` only).")
    ] = "last_activity",
    sla: Annotated[
        Literal["breached", "due_soon"] | None,
        Query(
            description="`breached`: an SLA target missed and not met since (not resolved); "
            "`due_soon`: an SLA clock due within `due_within` minutes."
        ),
    ] = None,
    due_within: Annotated[int, Query(ge=1, le=1440, description="Minutes, for `sla=due_soon`.")] = 60,
) -> Response:
    """Conversations, newest activity first (or best match first), narrowed by any of the filters and
    the search together."""
    assignee_id: uuid.UUID | None = None
    if assignee == "me":
        if principal.user_id is None:
            raise errors.no_me()
        assignee_id = principal.user_id
    elif assignee not in (None, "unassigned"):
        try:
            assignee_id = uuid.UUID(assignee)
        except ValueError:  # the pattern lets only ids through
            raise errors.bad_assignee() from None
    filters = ConversationFilters(
        status=status_,
        assignee_id=assignee_id,
        unassigned=assignee == "unassigned",
        inbox_id=inbox_id,
        contact_id=contact_id,
        sla=sla,
        due_within=due_within,
        team_id=team_id,
        tags=tuple(dict.fromkeys(tag or ())),
        priority=priority,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
    )
    relevance = sort == "relevance"
    rows = await service.list_conversations(
        db,
        principal,
        filters,
        search=q,
        sort=sort,
        before=_after_rank(paging) if relevance else _after(paging),
        limit=paging.fetch,
    )
    now = datetime.now(UTC)
    return paging.page_json(
        rows,
        _rank_position if relevance else _activity_position,
        lambda row: listed_json(
            row.conversation, now, None if row.matched_in is None else sorted(row.matched_in)
        ),
    )


def _after_rank(paging: Paging) -> tuple[float, uuid.UUID] | None:
    """A relevance cursor: ("relevance", rank, id); a cursor of the other order is refused (400)."""
    position = paging.after(_relevance_tag, float, uuid.UUID)
    return None if position is None else (position[1], position[2])


def _relevance_tag(value: str) -> str:
    if value != "relevance":
        raise ValueError(value)
    return value


def _rank_position(row: Listed) -> tuple[str, float | None, uuid.UUID]:
    return ("relevance", row.rank, row.conversation.id)


def _activity_position(row: Listed) -> tuple[datetime, uuid.UUID]:
    return (row.conversation.last_activity_at, row.conversation.id)


@router.get("/orgs/{org_id}/conversations/{conversation_id}", response_model=ConversationOut)
async def get_conversation(
    org_id: uuid.UUID, conversation_id: uuid.UUID, principal: Reader, db: DbSession, response: Response
) -> ConversationOut:
    """One conversation; its ETag is its version."""
    return _with_etag(response, await service.get_conversation(db, principal, conversation_id))


@router.patch(
    "/orgs/{org_id}/conversations/{conversation_id}",
    response_model=ConversationOut,
    responses=problem_responses(
        errors.PRECONDITION_FAILED, errors.NOT_AN_AGENT, errors.SNOOZE_NEEDS_TIME, errors.UNKNOWN_REFERENCE
    ),
)
async def update_conversation(
    org_id: uuid.UUID,
    conversation_id: uuid.UUID,
    payload: ConversationUpdate,
    principal: Worker,
    db: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> ConversationOut:
    """Change the fields sent; `null` clears subject, assignee, team or snoozed_until. Status, priority,
    assignee, team and tag changes are written as `activity` messages. Honours `If-Match`."""
    changes = payload.model_dump(exclude_unset=True)
    conversation = await service.update_conversation(
        db, principal, conversation_id, changes, if_match=_version(if_match)
    )
    return _with_etag(response, conversation)


@router.post(
    "/orgs/{org_id}/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
    responses=problem_responses(errors.IDEMPOTENCY_KEY_REUSED, errors.UNUSABLE_ATTACHMENT),
)
async def post_message(
    org_id: uuid.UUID,
    conversation_id: uuid.UUID,
    payload: MessageCreate,
    principal: Worker,
    db: DbSession,
    request: Request,
    idempotency_key: KeyHeader = None,
) -> MessageOut | JSONResponse:
    """Add a message: `incoming` (from the contact; reopens a snoozed or resolved conversation),
    `outgoing` (to the contact; the first one sets first_response_at) or `note` (members only), with
    the conversation's uploads in `attachment_ids` attached to it. Honours `Idempotency-Key`."""
    replay = await _claim(db, principal, request, payload.model_dump(mode="json"), idempotency_key)
    if replay is not None:
        return _replayed(replay)
    message, attachments = await service.post_message(
        db, principal, conversation_id, payload.kind, payload.body, payload.attachment_ids
    )
    answer = _message_out(message, attachments)
    await _store(db, principal, idempotency_key, answer)
    return answer


@router.get("/orgs/{org_id}/conversations/{conversation_id}/messages", response_model=Page[MessageOut])
async def list_messages(
    org_id: uuid.UUID, conversation_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging
) -> Response:
    """The conversation's messages, newest first (`limit` of them; the cursor goes further back)."""
    rows = await service.list_messages(
        db, principal, conversation_id, before=_after(paging), limit=paging.fetch
    )
    attachments = await service.attachments_of(db, principal, [row.id for row in rows if row.has_attachments])
    return paging.page_json(
        rows, lambda row: (row.created_at, row.id), lambda row: message_json(row, attachments.get(row.id, []))
    )


@router.get("/orgs/{org_id}/conversations/{conversation_id}/rating", response_model=RatingOut)
async def get_rating(
    org_id: uuid.UUID, conversation_id: uuid.UUID, principal: Reader, db: DbSession
) -> RatingOut:
    """The customer's rating of the conversation (given in the widget once it was resolved); 404 if
    there is none."""
    return RatingOut.model_validate(await service.rating_of(db, principal, conversation_id))


def _message_out(message: Message, attachments: list[MessageAttachment]) -> MessageOut:
    answer = MessageOut.model_validate(message)
    answer.attachments = [AttachmentOut.model_validate(attachment) for attachment in attachments]
    return answer
