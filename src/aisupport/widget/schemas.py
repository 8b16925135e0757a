"""What the widget API reads and answers: a customer's view, never a member's (no notes, no activity,
no assignee, tags, SLA or custom attributes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aisupport.conversations.conversation_schemas import ATTACHMENTS_MAX, Body, Subject
from aisupport.conversations.models import RATING_COMMENT_MAX
from aisupport.core.schemas import RequestModel


class SessionStart(RequestModel):
    """Nothing, for an anonymous visitor; or an identity with its proof: `identity_token`, or
    `external_id` with `identity_hash` (and, unsigned, `email` and `name` for a new contact)."""

    identity_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="An HS256 JWT signed with the identity secret.",
    )
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    identity_hash: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="Hex HMAC-SHA256 of `external_id`."
    )
    email: str | None = Field(default=None, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_proof(self) -> SessionStart:
        if self.identity_token is not None and (
            self.external_id or self.identity_hash or self.email or self.name
        ):
            raise ValueError("an identity token carries the identity itself: send it alone")
        return self


class VisitorContact(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    email: str | None


class VisitorSession(BaseModel):
    visitor_token: str = Field(description="`Authorization: Bearer <visitor_token>` on the widget's routes.")
    expires_at: datetime = Field(description="`POST .../session/refresh` before then gets a new one.")
    visitor_id: uuid.UUID
    verified: bool = Field(description="An identity was proven: the contact's history shows on any device.")
    contact: VisitorContact


class VisitorMessageCreate(RequestModel):
    body: Body
    attachment_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=ATTACHMENTS_MAX,
        description="Your uploads to this conversation (POST .../attachments), attached in this order.",
    )

    @field_validator("attachment_ids")
    @classmethod
    def _distinct(cls, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(ids)) != len(ids):
            raise ValueError("names an attachment twice")
        return ids


class VisitorConversationCreate(RequestModel):
    subject: Subject | None = None
    message: VisitorMessageCreate = Field(description="The first message (attachments come with later ones).")

    @field_validator("message")
    @classmethod
    def _no_attachments(cls, message: VisitorMessageCreate) -> VisitorMessageCreate:
        if message.attachment_ids:
            raise ValueError("a new conversation has no uploads yet; attach them to a later message")
        return message


class RatingIn(RequestModel):
    score: int = Field(ge=1, le=5, strict=True, description="1 (bad) to 5 (excellent).")
    comment: str | None = Field(default=None, max_length=RATING_COMMENT_MAX)


class RatingView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    score: int
    comment: str | None
    updated_at: datetime


class VisitorConversation(BaseModel):
    """A conversation as its customer sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    subject: str | None
    status: Literal["open", "pending", "snoozed", "resolved"]
    created_at: datetime
    last_message_at: datetime | None
    resolved_at: datetime | None


class VisitorAttachment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    content_type: str
    size: int


class VisitorMessage(BaseModel):
    """A public message as its customer sees it: `incoming` from the customer, `outgoing` from the team."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    kind: Literal["incoming", "outgoing"]
    body: str
    created_at: datetime
    attachments: list[VisitorAttachment] = Field(default_factory=list)


def conversation_view(fields: dict[str, Any]) -> dict[str, Any]:
    """A conversation (as a dict of its member representation or row) as its customer sees it."""
    return VisitorConversation.model_validate(fields).model_dump(mode="json")


def message_view(fields: dict[str, Any]) -> dict[str, Any]:
    """A public message (as a dict of its member representation) as its customer sees it."""
    return VisitorMessage.model_validate(fields).model_dump(mode="json")
