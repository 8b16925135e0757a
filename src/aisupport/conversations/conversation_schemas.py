"""Request and response bodies of conversations and their messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from sqlalchemy import Row

from aisupport.conversations import sla
from aisupport.conversations.models import Conversation
from aisupport.conversations.schemas import Priority
from aisupport.core.json_limits import JsonObjectBounds
from aisupport.core.schemas import RequestModel, Timestamp

Status = Literal["open", "pending", "snoozed", "resolved"]
SortOrder = Literal["last_activity", "relevance"]
SEARCH_MAX = 200  # characters of a full-text query
# What a member may post; `activity` messages are written by the service only.
PostedKind = Literal["incoming", "outgoing", "note"]
MessageKind = Literal["incoming", "outgoing", "note", "activity"]

ATTRIBUTE_BOUNDS = JsonObjectBounds(max_depth=4, max_items=200, max_bytes=16 * 1024)
BODY_MAX = 65536  # characters (64 Ki); a longer message is split by the sender
TAGS_MAX = 20
TAG_MAX = 50

CustomAttributes = Annotated[dict[str, JsonValue], ATTRIBUTE_BOUNDS]
Subject = Annotated[str, Field(min_length=1, max_length=255)]
Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX, pattern=r"^[^\s,\x00\x1c-\x1f\x85]+$")]
Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX, description=f"At most {TAGS_MAX}, each a word.")]
Body = Annotated[
    str, Field(min_length=1, max_length=BODY_MAX, description="Text, at most 65,536 characters.")
]


class FirstMessage(RequestModel):
    kind: PostedKind = "incoming"
    body: Body


class ConversationCreate(RequestModel):
    inbox_id: uuid.UUID
    contact_id: uuid.UUID
    subject: Subject | None = None
    priority: Priority = "none"
    tags: Tags = Field(default_factory=list)
    custom_attributes: CustomAttributes = Field(
        default_factory=dict, description=f"Any JSON object. {ATTRIBUTE_BOUNDS.describe()}"
    )
    message: FirstMessage | None = Field(default=None, description="An optional first message.")


class ConversationUpdate(RequestModel):
    """Only the fields sent change; `null` clears subject, assignee, team or snoozed_until; status,
    priority, tags and custom_attributes may be left out but not be null."""

    status: Status = Field(default=None)  # type: ignore[arg-type]
    snoozed_until: Timestamp | None = Field(default=None, description="With status `snoozed`.")
    priority: Priority = Field(default=None)  # type: ignore[arg-type]
    assignee_id: uuid.UUID | None = Field(default=None, description="A member with the agent role or above.")
    team_id: uuid.UUID | None = None
    tags: Tags = Field(default=None, description="Replaces all tags.")  # type: ignore[arg-type]
    subject: Subject | None = None
    custom_attributes: CustomAttributes = Field(
        default=None,  # type: ignore[arg-type]
        description="Replaces them whole.",
    )


class SlaClockOut(BaseModel):
    due_at: datetime | None = Field(
        description="When the target is due, in the inbox's business hours (null: nothing due, or the "
        "clock is stopped: resolution while pending or snoozed)."
    )
    breached: bool = Field(description="The clock ran past its due time before being met.")
    breached_at: datetime | None = Field(description="When it was breached (its due time).")
    met_at: datetime | None = Field(description="When the target was met (a reply, the resolution).")


class SlaOut(BaseModel):
    """The conversation's SLA clocks; a target the inbox's policy does not set (or no policy) is null."""

    first_response: SlaClockOut | None
    next_response: SlaClockOut | None
    resolution: SlaClockOut | None


@cache
def _row_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` that a conversation row has (a list item's `matched_in`, `sla` are not)."""
    return tuple(name for name in model.model_fields if name != "sla" and hasattr(Conversation, name))


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @model_validator(mode="before")
    @classmethod
    def _with_sla(cls, data: Any) -> Any:
        """Read from a conversation row: its fields, and its SLA clocks as they read now."""
        if isinstance(data, BaseModel | dict) or not hasattr(data, "sla_targets"):
            return data
        loaded = vars(data)  # the row's values as loaded: read directly, not through the ORM's descriptors
        fields = {name: loaded[name] if name in loaded else getattr(data, name) for name in _row_fields(cls)}
        return {**fields, "sla": sla.view(data, datetime.now(UTC))}

    id: uuid.UUID
    number: int
    inbox_id: uuid.UUID
    contact_id: uuid.UUID
    subject: str | None
    status: Status
    snoozed_until: datetime | None
    priority: Priority
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    tags: list[str]
    custom_attributes: dict[str, JsonValue]
    first_response_at: datetime | None
    last_message_at: datetime | None
    resolved_at: datetime | None
    reopened_count: int
    version: int
    last_activity_at: datetime
    created_at: datetime
    updated_at: datetime
    sla: SlaOut


ATTACHMENTS_MAX = 10


class ListedConversation(ConversationOut):
    """A conversation of a list; with a search (`q`), where it matched."""

    matched_in: list[Literal["contact", "messages", "subject"]] | None = Field(
        default=None,
        description="With `q`: which of the subject, the messages (notes included) and the contact's name "
        "and email match it. Null without `q`.",
    )


def listed_json(row: Row[Any], now: datetime, matched_in: list[str] | None) -> dict[str, Any]:
    """A list item as ListedConversation shows it, made from a row of the list's columns
    (conversation_repository.LISTED_COLUMNS) without validating it again: what it holds was read from
    the database. Its fields are the model's, so the two cannot drift apart (tests compare the item
    with the conversation's own answer)."""
    values = row._mapping
    return {
        **{name: values[name] for name in _row_fields(ListedConversation)},
        "sla": sla.view(row, now),  # type: ignore[arg-type]  # a row has the columns view reads
        "matched_in": matched_in,
    }


class MessageCreate(RequestModel):
    kind: PostedKind
    body: Body
    attachment_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=ATTACHMENTS_MAX,
        description=f"At most {ATTACHMENTS_MAX} uploads of this conversation not yet attached to a message "
        "(POST .../attachments), attached in this order.",
    )

    @field_validator("attachment_ids")
    @classmethod
    def _distinct(cls, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(ids)) != len(ids):
            raise ValueError("names an attachment twice")
        return ids


class AttachmentOut(BaseModel):
    """A file uploaded to a conversation; `message_id` is null until a message names it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID | None
    filename: str = Field(description="The uploaded name, made safe: no path, no control characters.")
    content_type: str = Field(description="As uploaded (`application/octet-stream` if none or unreadable).")
    size: int = Field(description="In bytes.")
    sha256: str = Field(description="Hex digest of the content.")
    uploaded_by_type: str
    uploaded_by_id: uuid.UUID | None
    created_at: datetime


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    kind: MessageKind
    private: bool = Field(description="Notes and activity: for members only, never shown to the customer.")
    body: str
    author_type: str
    author_id: uuid.UUID | None
    created_at: datetime
    ai: dict[str, Any] | None = Field(
        default=None,
        description='A reply sent from an AI draft: `{"draft_id", "edited"}`; an answer the AI wrote '
        '(`author_type` `ai`): `{"citations": [{"source_id", "chunk_id", "title", "quote"}], '
        '"confidence"}`; otherwise null.',
    )
    attachments: list[AttachmentOut] = Field(default_factory=list, description="In the order attached.")


_MESSAGE_FIELDS = tuple(name for name in MessageOut.model_fields if name != "attachments")


def message_json(row: Row[*tuple[Any, ...]], attachments: list[Any]) -> dict[str, Any]:
    """A message as MessageOut shows it, from a row of conversation_repository.MESSAGE_SHOWN and its
    attachments (mapped rows), without validating the row again (see listed_json)."""
    values = row._mapping
    return {
        **{name: values[name] for name in _MESSAGE_FIELDS},
        "attachments": [AttachmentOut.model_validate(attachment).model_dump() for attachment in attachments],
    }


# --- Tags -----------------------------------------------------------------------------------------------

Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", description="`#rrggbb`.")]


class TagCreate(RequestModel):
    name: Tag
    color: Color | None = None
    description: str | None = Field(default=None, max_length=200)


class TagUpdate(RequestModel):
    name: Tag | None = Field(default=None, description="A rename applies to every conversation with the tag.")
    color: Color | None = None
    description: str | None = Field(default=None, max_length=200)


class TagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    color: str | None
    description: str | None
    created_at: datetime


class RatingOut(BaseModel):
    """The customer's rating of the resolved conversation (in the widget)."""

    model_config = ConfigDict(from_attributes=True)

    conversation_id: uuid.UUID
    score: int = Field(description="1 (bad) to 5 (excellent).")
    comment: str | None
    created_at: datetime
    updated_at: datetime = Field(description="When it was last given (a new rating replaces it).")
