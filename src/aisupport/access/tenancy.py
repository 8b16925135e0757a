"""Acting in an organization that the request itself established (decision 0032).

Most requests act as the principal their credential names: `current_principal` binds its organization
and user as the tenant of the request's session. Some requests learn whom they act as on the way: a
sign-up or a new organization creates it, a sign-in or a refresh finds the session's, a switch picks
another, an invitation link names its own, an account event is recorded in each of the user's
organizations. They call `act_as`, which binds the tenant through the same scope as the dependency
(the request's state, read when each transaction begins) and applies it to the transaction in progress.

No other code names a tenant; work outside a request opens `core.tenancy.tenant_session`
(tests/test_tenancy_mechanism.py holds both rules).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.core.tenancy import rebind_request_tenant


async def act_as(db: AsyncSession, *, organization_id: uuid.UUID | None, user_id: uuid.UUID | None) -> None:
    """Go on with this request as `user_id` in `organization_id`, which it has just established.

    `organization_id` None: a person before they are in an organization (reading their own
    memberships, to choose one); `user_id` None: acting for the organization by a secret it gave out
    (an invitation link).
    """
    await rebind_request_tenant(db, organization_id=organization_id, user_id=user_id)
