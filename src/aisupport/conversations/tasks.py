"""Jobs of the conversations domain: offering a reopened, unassigned conversation to its team
(assignment.py)."""

from __future__ import annotations

import uuid

from procrastinate import JobContext

from aisupport.conversations import assignment
from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.tenancy import tenant_session


@jobs.task(name=assignment.AUTO_ASSIGN_TASK, retry=RETRY, pass_context=True)
async def auto_assign(context: JobContext, organization_id: str, conversation_id: str) -> None:
    """Auto-assign the reopened conversation if it is still unassigned and open (else nothing)."""
    organization = uuid.UUID(organization_id)
    async with tenant_session(services_of(context).sessionmaker, organization_id=organization) as db:
        await assignment.auto_assign_reopened(db, organization, uuid.UUID(conversation_id))
