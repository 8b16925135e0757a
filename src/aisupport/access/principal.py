"""Who is calling: the result of authentication, as the services see it (no web framework here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from aisupport.access.permissions import Permission, Role, permissions_of
from aisupport.audit.service import Actor
from aisupport.core.errors import AppError

API_KEY_PREFIX = "sk"


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which organization, with which effective role.

    A person signed in with an access token, or an API key (a non-human member, `user_id` None).
    """

    organization_id: uuid.UUID
    role: Role
    via: Literal["bearer", "cookie", "api_key"]
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of(self.role, api_key=self.api_key_id is not None)

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, api_key_id=self.api_key_id)

    @property
    def person(self) -> uuid.UUID:
        """The signed-in user's id; routes that need a person require Permission.ACCOUNT first."""
        if self.user_id is None:
            raise AppError(403, "forbidden", "API keys cannot do this.")
        return self.user_id

    @property
    def session(self) -> uuid.UUID:
        """The signed-in user's session (people have one; API keys do not)."""
        if self.session_id is None:
            raise AppError(403, "forbidden", "API keys cannot do this.")
        return self.session_id
