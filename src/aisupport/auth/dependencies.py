"""The auth package's own components, for its routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aisupport.auth.service import AuthComponents
from aisupport.core.errors import answers
from aisupport.core.ratelimit import RATE_LIMITED


@answers(RATE_LIMITED)  # the rate limiter is reached through these components only
async def auth_components(request: Request) -> AuthComponents:
    components: AuthComponents = request.app.state.auth
    return components


Auth = Annotated[AuthComponents, Depends(auth_components)]
