from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, String, func, text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import Base, Timestamped


class AuthSession(Timestamped, Base):
    """A sign-in: the family of refresh tokens issued from one login (`sid` in access tokens)."""

    __tablename__ = "auth_sessions"
    # Not TenantOwned (core/db.py): read through its user, whatever organization it acts in.
    not_tenant_owned_because: ClassVar[str] = (
        "a person's session; organization_id is where it acts, and moves"
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(INET)


class RefreshToken(Base):
    """One refresh token of a session's family. Only the SHA-256 of the secret is stored."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    # Unique: a family never branches, each token has at most one successor.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="CASCADE"), unique=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(INET)


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"  # confirm the account's address
    CHANGE_EMAIL = "change_email"  # confirm a new address; the change applies on confirmation
    RESET_PASSWORD = "reset_password"


class AccountToken(Timestamped, Base):
    """A single-use secret mailed to a user (verify an address, confirm a new one, reset a password);
    only its SHA-256 is stored. `binding` ties it to the account's state when it was asked for
    (password, address, security stamp): any change of that state kills it, as does `revoked_at`."""

    __tablename__ = "account_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))  # where the link was sent
    binding: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ActivityKind(StrEnum):
    SIGNED_UP = "signed_up"
    SIGNED_IN = "signed_in"
    SIGN_IN_FAILED = "sign_in_failed"  # a wrong password for this account
    SIGNED_OUT = "signed_out"
    SESSION_REVOKED = "session_revoked"  # one session ended from the session list
    SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse_detected"  # its session was ended
    PASSWORD_RESET = "password_reset"
    PASSWORD_CHANGED = "password_changed"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    EMAIL_VERIFIED = "email_verified"


class AccountActivity(Base):
    """One security event of a user's account, for the user's own activity list (`GET /auth/activity`).
    Owned by the user, not by an organization; written in the transaction of the change it records."""

    __tablename__ = "account_activity"
    __table_args__ = (
        Index("ix_account_activity_user_id_id", "user_id", "id"),
        Index("ix_account_activity_occurred_at", "occurred_at"),  # the retention purge
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
