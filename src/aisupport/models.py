"""Every model, imported in one place so the metadata is complete for Alembic and the tests."""

from aisupport.auth.models import AuthSession, RefreshToken, User
from aisupport.core.db import Base
from aisupport.organizations.models import Membership, Organization

__all__ = ["AuthSession", "Base", "Membership", "Organization", "RefreshToken", "User"]
