"""The conversations domain's tables, by resource: SLA policies, teams (and their members), tags, agent
availability, inboxes. Conversations and messages come in their own section.

Every table is tenant-owned; references between them name the organization too (composite foreign
keys on `(organization_id, id)`), so no row can point at another organization's row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import Base, TenantOwned, Timestamped

# --- SLA policies -------------------------------------------------------------------------------------


class SlaPolicy(TenantOwned, Timestamped, Base):
    """Targets in minutes per conversation priority: {"urgent": {"first_response": 15, ...}, ...}."""

    __tablename__ = "sla_policies"
    __table_args__ = (
        UniqueConstraint("organization_id", "id", name="uq_sla_policies_organization_id_id"),
        Index("ix_sla_policies_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    targets: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


# --- Teams ----------------------------------------------------------------------------------------------


class Team(TenantOwned, Timestamped, Base):
    __tablename__ = "teams"
    __table_args__ = (
        UniqueConstraint("organization_id", "id", name="uq_teams_organization_id_id"),
        UniqueConstraint("organization_id", "name", name="uq_teams_organization_id_name"),
        Index("ix_teams_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))


class TeamMember(TenantOwned, Timestamped, Base):
    """A member of the organization in a team. Both references name the organization, and a member
    removed from the organization leaves every team with it (ON DELETE CASCADE from memberships)."""

    __tablename__ = "team_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name="fk_team_members_team_same_org",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_team_members_membership_same_org",
            ondelete="CASCADE",
        ),
        # A member's teams, and the cascade from their membership.
        Index("ix_team_members_organization_id_user_id", "organization_id", "user_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


# --- Tags -----------------------------------------------------------------------------------------------


class Tag(TenantOwned, Timestamped, Base):
    """A tag of the organization's vocabulary (decision 0043). Conversations carry tag names in their
    `tags` array; a name applied that is not here yet is added (agents tag freely), and admins rename,
    describe and delete tags, which rewrites the conversations carrying them."""

    __tablename__ = "tags"
    __table_args__ = (
        UniqueConstraint("organization_id", "id", name="uq_tags_organization_id_id"),
        UniqueConstraint("organization_id", "name", name="uq_tags_organization_id_name"),
        Index("ix_tags_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(50))
    color: Mapped[str | None] = mapped_column(String(7))
    description: Mapped[str | None] = mapped_column(String(200))


# --- Agent availability -------------------------------------------------------------------------------

AVAILABILITIES = ("online", "away", "offline")


class MemberAvailability(TenantOwned, Base):
    """A member's availability in one organization; no row reads as `offline`."""

    __tablename__ = "member_availability"
    __table_args__ = (
        CheckConstraint("status IN ('online', 'away', 'offline')", name="status_known"),
        ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_member_availability_membership_same_org",
            ondelete="CASCADE",
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Auto-assignment's round-robin memory: when this member was last given a conversation by it (the
    # longest waiting online member goes next; conversations/assignment.py). Not a change of availability.
    last_assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- Inboxes --------------------------------------------------------------------------------------------

INBOX_KINDS = ("api", "widget")


class Inbox(TenantOwned, Timestamped, Base):
    """Where conversations arrive. A widget inbox holds what the public widget API will need: the
    origins allowed to embed it and the identity-verification secret (AES-GCM encrypted, see
    conversations/secrets.py)."""

    __tablename__ = "inboxes"
    __table_args__ = (
        CheckConstraint("kind IN ('api', 'widget')", name="kind_known"),
        CheckConstraint("auto_assignment_limit BETWEEN 1 AND 1000", name="auto_assignment_limit_bounded"),
        CheckConstraint("ai_mode IN ('off', 'draft', 'auto')", name="ai_mode_known"),
        CheckConstraint("ai_threshold BETWEEN 0 AND 1", name="ai_threshold_bounded"),
        CheckConstraint("ai_max_replies BETWEEN 1 AND 100", name="ai_max_replies_bounded"),
        UniqueConstraint("organization_id", "id", name="uq_inboxes_organization_id_id"),
        # No SET NULL here: it would null organization_id too. Deleting a team or policy detaches its
        # inboxes first (service); these keys refuse whatever slips past that (409).
        ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name="fk_inboxes_team_same_org",
        ),
        ForeignKeyConstraint(
            ["organization_id", "sla_policy_id"],
            ["sla_policies.organization_id", "sla_policies.id"],
            name="fk_inboxes_sla_policy_same_org",
        ),
        Index("ix_inboxes_organization_id_created_at", "organization_id", "created_at"),
        Index("ix_inboxes_organization_id_team_id", "organization_id", "team_id"),
        Index("ix_inboxes_organization_id_sla_policy_id", "organization_id", "sla_policy_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    team_id: Mapped[uuid.UUID | None] = mapped_column()
    sla_policy_id: Mapped[uuid.UUID | None] = mapped_column()
    auto_assignment: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # At most this many open (not resolved) conversations of this inbox per member from
    # auto-assignment; null: no cap.
    auto_assignment_limit: Mapped[int | None] = mapped_column(Integer)
    # {"time_zone": ..., "weekly": {"monday": [{"start": "09:00", "end": "17:00"}], ...},
    #  "holidays": ["2026-12-25"]}; null: always open (conversations/sla_clock.py reads it).
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    allowed_origins: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    identity_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    identity_secret_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The AI on each customer message (ai/answering.py): `off`, `draft` (a draft for the agents) or
    # `auto` (answers at or above `ai_threshold` with a valid citation, at most `ai_max_replies` in a
    # conversation; anything else hands off to a person).
    ai_mode: Mapped[str] = mapped_column(String(8), server_default=text("'off'"))
    ai_threshold: Mapped[float] = mapped_column(Float, server_default=text("0.7"))
    ai_max_replies: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- Conversations and messages -----------------------------------------------------------------------

STATUSES = ("open", "pending", "snoozed", "resolved")

# Search documents (decision 0041): stored tsvectors whose lexemes start with the organization's prefix
# (SQL functions of migration 15119fee7164), so that one GIN index serves every organization apart.
# Activity messages are the system's words, not the conversation's: left out.
SUBJECT_DOCUMENT = "search_document(organization_id, subject)"
MESSAGE_DOCUMENT = "CASE WHEN kind <> 'activity' THEN search_document(organization_id, body) END"
PRIORITIES = ("none", "low", "normal", "high", "urgent")
MESSAGE_KINDS = ("incoming", "outgoing", "note", "activity")


# A clock still to be marked breached: running (not met, not stopped) and not marked yet. The same
# text is in the migration's indexes and discovery function; conversations/sla.py reads them too.
UNMARKED_FIRST_RESPONSE = (
    "sla_first_response_due_at IS NOT NULL AND sla_first_response_breached_at IS NULL"
    " AND first_response_at IS NULL AND status <> 'resolved'"
)
UNMARKED_NEXT_RESPONSE = (
    "sla_next_response_due_at IS NOT NULL AND sla_next_response_breached_at IS NULL"
    " AND sla_next_response_started_at IS NOT NULL AND sla_next_response_met_at IS NULL"
)
UNMARKED_RESOLUTION = (
    "sla_resolution_due_at IS NOT NULL AND sla_resolution_breached_at IS NULL AND status <> 'resolved'"
)


class ConversationCounter(TenantOwned, Base):
    """The last conversation number given out in an organization: creations take the next one with
    `UPDATE ... RETURNING` in their transaction, so they queue on this row only (decision 0036)."""

    __tablename__ = "conversation_counters"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    last_number: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Conversation(TenantOwned, Timestamped, Base):
    """A conversation with a contact in an inbox. `version` grows by one with every change (the ETag)."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'pending', 'snoozed', 'resolved')", name="status_known"),
        CheckConstraint("priority IN ('none', 'low', 'normal', 'high', 'urgent')", name="priority_known"),
        UniqueConstraint("organization_id", "id", name="uq_conversations_organization_id_id"),
        UniqueConstraint("organization_id", "number", name="uq_conversations_organization_id_number"),
        ForeignKeyConstraint(
            ["organization_id", "inbox_id"],
            ["inboxes.organization_id", "inboxes.id"],
            name="fk_conversations_inbox_same_org",
        ),
        ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name="fk_conversations_contact_same_org",
        ),
        # A member who leaves, or a team deleted, leaves its conversations unassigned (only that column
        # is nulled: PostgreSQL 15's column list, never organization_id).
        ForeignKeyConstraint(
            ["organization_id", "assignee_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_conversations_assignee_same_org",
            ondelete="SET NULL (assignee_id)",
        ),
        ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name="fk_conversations_team_same_org",
            ondelete="SET NULL (team_id)",
        ),
        Index(
            "ix_conversations_organization_id_last_activity_at_id",
            "organization_id",
            "last_activity_at",
            "id",
        ),
        Index("ix_conversations_organization_id_contact_id", "organization_id", "contact_id"),
        # The lists (decision 0041): equality on the leading columns, then the keyset order, so a page
        # is read in order and stops after `limit` rows. They also serve the foreign keys' cascades.
        *(
            Index(f"ix_conversations_org_{name}status_activity", "organization_id", *columns)
            for name, columns in (
                ("", ("status", "last_activity_at", "id")),
                ("assignee_", ("assignee_id", "status", "last_activity_at", "id")),
                ("team_", ("team_id", "status", "last_activity_at", "id")),
                ("inbox_", ("inbox_id", "status", "last_activity_at", "id")),
            )
        ),
        Index("ix_conversations_search", "search", postgresql_using="gin"),
        # A member's open conversations in an inbox: auto-assignment's cap counts them.
        Index(
            "ix_conversations_open_by_assignee",
            "organization_id",
            "assignee_id",
            "inbox_id",
            postgresql_where=text("status <> 'resolved'"),
        ),
        # SLA clocks still to be marked breached, and snoozes to wake: led by the due time, so that the
        # periodic jobs find the work due in every organization with one range scan each (decision 0039).
        Index(
            "ix_conversations_sla_first_response_due",
            "sla_first_response_due_at",
            "organization_id",
            postgresql_where=text(UNMARKED_FIRST_RESPONSE),
        ),
        Index(
            "ix_conversations_sla_next_response_due",
            "sla_next_response_due_at",
            "organization_id",
            postgresql_where=text(UNMARKED_NEXT_RESPONSE),
        ),
        Index(
            "ix_conversations_sla_resolution_due",
            "sla_resolution_due_at",
            "organization_id",
            postgresql_where=text(UNMARKED_RESOLUTION),
        ),
        Index(
            "ix_conversations_snoozed_until",
            "snoozed_until",
            "organization_id",
            postgresql_where=text("status = 'snoozed'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    number: Mapped[int] = mapped_column(Integer)
    inbox_id: Mapped[uuid.UUID] = mapped_column()
    contact_id: Mapped[uuid.UUID] = mapped_column()
    subject: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(10), server_default=text("'open'"))
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[str] = mapped_column(String(10), server_default=text("'none'"))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    team_id: Mapped[uuid.UUID | None] = mapped_column()
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default=text("'{}'"))
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reopened_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # SLA clocks (conversations/sla.py, decision 0039): the targets in force for the priority (minutes
    # by target name; null without a policy), and per clock when it started, when it is due (null: no
    # target, or stopped), when it was breached (its due time) and, for next response, met.
    sla_targets: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    sla_first_response_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_first_response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_first_response_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_next_response_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_next_response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_next_response_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_next_response_met_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_resolution_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_resolution_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_resolution_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # [[from, to or null], ...] (ISO 8601): spans spent pending or snoozed since the resolution clock
    # started; they do not count toward resolution.
    sla_pauses: Mapped[list[list[str | None]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    search: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(SUBJECT_DOCUMENT, persisted=True), deferred=True, deferred_raiseload=True
    )


class Message(TenantOwned, Timestamped, Base):
    """One message of a conversation. `private` (notes and activity) is for members only; `author_type`
    is `member`, `api_key`, `widget_visitor`, `ai` or `system`, `author_id` the user, key or visitor
    (none for the others)."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("kind IN ('incoming', 'outgoing', 'note', 'activity')", name="kind_known"),
        ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_messages_conversation_same_org",
            ondelete="CASCADE",
        ),
        UniqueConstraint("organization_id", "id", name="uq_messages_organization_id_id"),
        Index(
            "ix_messages_organization_id_conversation_id_created_at_id",
            "organization_id",
            "conversation_id",
            "created_at",
            "id",
        ),
        Index("ix_messages_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(10))
    private: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    body: Mapped[str] = mapped_column(Text)
    author_type: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[uuid.UUID | None] = mapped_column()
    # What the AI had to do with it (ai/drafts.py, ai/answering.py): a reply sent from a draft, or the
    # AI's own answer with its citations; null for the rest.
    ai: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    search: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(MESSAGE_DOCUMENT, persisted=True), deferred=True, deferred_raiseload=True
    )


ATTACHMENT_FILENAME_MAX = 255


class MessageAttachment(TenantOwned, Timestamped, Base):
    """A file uploaded to a conversation, kept in object storage under `storage_key`; attached to one
    message (`message_id`, in `position` order) when a message names it, purged if none does within a
    day (conversations/tasks.py). `uploaded_by_type`/`_id` say who uploaded it, as messages' authors."""

    __tablename__ = "message_attachments"
    __table_args__ = (
        CheckConstraint("size > 0", name="size_positive"),
        CheckConstraint("(message_id IS NULL) = (position IS NULL)", name="position_when_attached"),
        UniqueConstraint("organization_id", "id", name="uq_message_attachments_organization_id_id"),
        UniqueConstraint("storage_key", name="uq_message_attachments_storage_key"),
        ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_message_attachments_conversation_same_org",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["organization_id", "message_id"],
            ["messages.organization_id", "messages.id"],
            name="fk_message_attachments_message_same_org",
            ondelete="CASCADE",
        ),
        # A page of messages loads its attachments in one query.
        Index("ix_message_attachments_organization_id_message_id", "organization_id", "message_id"),
        # A contact's erasure finds its conversations' attachments.
        Index("ix_message_attachments_organization_id_conversation_id", "organization_id", "conversation_id"),
        # The purge of uploads never attached: only those rows are in this index.
        Index(
            "ix_message_attachments_unattached_organization_id_created_at",
            "organization_id",
            "created_at",
            postgresql_where=text("message_id IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column()
    position: Mapped[int | None] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(ATTACHMENT_FILENAME_MAX))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(512))
    uploaded_by_type: Mapped[str] = mapped_column(String(20))
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column()


RATING_COMMENT_MAX = 2000


class ConversationRating(TenantOwned, Timestamped, Base):
    """The customer's rating of a resolved conversation (1 to 5, and a comment); rated again, it is
    replaced."""

    __tablename__ = "conversation_ratings"
    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 5", name="score_between_1_and_5"),
        ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_conversation_ratings_conversation_same_org",
            ondelete="CASCADE",
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(RATING_COMMENT_MAX))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(TenantOwned, Timestamped, Base):
    """An `Idempotency-Key` a request of the organization came with: the hash of that request and,
    once it succeeded, its answer (decision 0036). Claimed in the request's own transaction, so a
    concurrent request with the same key waits for it and then reads the answer."""

    __tablename__ = "idempotency_keys"
    # The purge of keys older than 24 hours finds them across organizations (conversations/tasks.py).
    __table_args__ = (
        Index("ix_idempotency_keys_created_at_organization_id", "created_at", "organization_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
