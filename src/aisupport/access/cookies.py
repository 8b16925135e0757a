"""The names of the browser transport's cookies, and reading them from a request (auth/cookies.py sets them).

With COOKIE_SECURE=true the names carry the `__Host-` prefix (Path=/, no Domain) or, for the refresh
and device cookies whose Path is /auth, the `__Secure-` prefix, so a sibling subdomain cannot plant them.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from aisupport.core.config import Settings


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str
    device: str

    @classmethod
    def for_settings(cls, settings: Settings) -> CookieNames:
        if settings.COOKIE_SECURE:
            return cls(
                "__Host-access_token", "__Secure-refresh_token", "__Host-csrf_token", "__Secure-device_token"
            )
        return cls("access_token", "refresh_token", "csrf_token", "device_token")


def request_cookies(request: Request, settings: Settings) -> tuple[str | None, str | None, str | None]:
    """The (access, refresh, csrf) cookies the request carries."""
    names = CookieNames.for_settings(settings)
    cookies = request.cookies
    return cookies.get(names.access), cookies.get(names.refresh), cookies.get(names.csrf)
