"""Mail sent by jobs exactly once: a delivery row per job, written in the job's transaction."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.message import EmailMessage

import structlog
from procrastinate import JobContext
from sqlalchemy import BigInteger, DateTime, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.config import Settings
from aisupport.core.db import Base
from aisupport.mail.mailer import Mailer, create_mailer

log = structlog.get_logger("aisupport.email")

MAILER = "mailer"  # the mailer's key in the job context


def worker_context(settings: Settings) -> dict[str, object]:
    """What mail adds to a worker's job context: the configured mailer."""
    return {MAILER: create_mailer(settings)}


class EmailDelivery(Base):
    """One row per job that sent mail: a job run again (its worker died after sending) sends nothing."""

    __tablename__ = "email_deliveries"

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def already_sent(db: AsyncSession, context: JobContext) -> bool:
    """Whether this job has sent its mail before (then it must not again)."""
    if await db.get(EmailDelivery, context.job.id) is None:
        return False
    log.info("email_already_sent")
    return True


async def send_once(
    db: AsyncSession, context: JobContext, message: EmailMessage, *, secret: str | None = None
) -> None:
    """Send `message` for this job and record it in `db`'s transaction (the caller commits).

    The Message-ID is derived from the job, so a receiving server can drop a duplicate too, in the one
    case left: a worker killed between the mail server's acceptance and the commit. A mail carrying a
    `secret` (a link) gets it hashed into the Message-ID: the retry's new link must not be dropped as
    a duplicate of the first, whose token never committed.
    """
    mailer: Mailer = context.additional_context[MAILER]
    domain = message["Message-ID"].rsplit("@", 1)[-1].rstrip(">") if message["Message-ID"] else "localhost"
    variant = f"-{hashlib.sha256(secret.encode()).hexdigest()[:12]}" if secret else ""
    del message["Message-ID"]
    message["Message-ID"] = f"<job-{context.job.id}{variant}@{domain}>"
    await mailer.send(message)
    db.add(EmailDelivery(job_id=context.job.id))
    await db.flush()
