"""The auth package's own components, for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aisupport.auth.service import AuthComponents


async def auth_components(request: Request) -> AuthComponents:
    components: AuthComponents = request.app.state.auth
    return components


Auth = Annotated[AuthComponents, Depends(auth_components)]
