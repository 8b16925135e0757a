"""Who is calling: the result of authentication, as the services see it (no web framework here).

One type for every actor (decision 0031):

- `member`: a person signed in (access token, as cookie or Bearer), in the organization acted in, with
  their role's permissions;
- `api_key`: an integration, a non-human member of its own organization: its role's permissions minus
  those over people, keys and the organization;
- `widget_visitor`: a customer in the chat widget: none of the members' permissions (the widget has
  routes of its own);
- `ai`: the organization's AI (drafts, auto-answers, triage): an agent's permissions, minus those over
  people, keys and the organization;
- `system`: a job or maintenance acting for the organization: every permission.

The audit actor is derived from the principal (`actor`), so every kind is recorded as what it is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from aisupport.access.errors import person_only
from aisupport.access.permissions import Permission, Role, permissions_of
from aisupport.audit.service import Actor

API_KEY_PREFIX = "sk"

PrincipalKind = Literal["member", "api_key", "widget_visitor", "ai", "system"]
Via = Literal["bearer", "cookie", "api_key", "widget", "internal"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which organization, with which effective role."""

    kind: PrincipalKind
    organization_id: uuid.UUID
    role: Role
    via: Via
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    visitor_id: uuid.UUID | None = None

    @classmethod
    def member(
        cls,
        organization_id: uuid.UUID,
        role: Role,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        via: Literal["bearer", "cookie"] = "bearer",
    ) -> Principal:
        return cls("member", organization_id, role, via, user_id=user_id, session_id=session_id)

    @classmethod
    def api_key(cls, organization_id: uuid.UUID, role: Role, *, api_key_id: uuid.UUID) -> Principal:
        return cls("api_key", organization_id, role, "api_key", api_key_id=api_key_id)

    @classmethod
    def widget_visitor(cls, organization_id: uuid.UUID, *, visitor_id: uuid.UUID) -> Principal:
        return cls("widget_visitor", organization_id, Role.VIEWER, "widget", visitor_id=visitor_id)

    @classmethod
    def ai(cls, organization_id: uuid.UUID) -> Principal:
        return cls("ai", organization_id, Role.AGENT, "internal")

    @classmethod
    def system(cls, organization_id: uuid.UUID) -> Principal:
        return cls("system", organization_id, Role.OWNER, "internal")

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.kind == "member":
            return permissions_of(self.role)
        if self.kind in ("api_key", "ai"):
            return permissions_of(self.role, api_key=True)
        if self.kind == "system":
            return frozenset(Permission)
        return frozenset()  # widget visitors hold no member permission

    @property
    def actor(self) -> Actor:
        return Actor(
            kind=self.kind, user_id=self.user_id, api_key_id=self.api_key_id, visitor_id=self.visitor_id
        )

    @property
    def person(self) -> uuid.UUID:
        """The signed-in user's id; routes that need a person require Permission.ACCOUNT first."""
        if self.user_id is None:
            raise person_only()
        return self.user_id

    @property
    def session(self) -> uuid.UUID:
        """The signed-in user's session (people have one; other principals do not)."""
        if self.session_id is None:
            raise person_only()
        return self.session_id
