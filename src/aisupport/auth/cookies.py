"""The browser transport: HttpOnly token cookies plus a readable CSRF cookie.

With COOKIE_SECURE=true the names carry the `__Host-` prefix (Path=/, no Domain) or, for the refresh
cookie whose Path is /auth, the `__Secure-` prefix, so a sibling subdomain cannot plant them.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from aisupport.auth.service import SignIn
from aisupport.core.config import Settings

REFRESH_COOKIE_PATH = "/auth"


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str

    @classmethod
    def for_settings(cls, settings: Settings) -> CookieNames:
        if settings.COOKIE_SECURE:
            return cls("__Host-access_token", "__Secure-refresh_token", "__Host-csrf_token")
        return cls("access_token", "refresh_token", "csrf_token")


def set_access_cookie(response: Response, settings: Settings, access_token: str, expires_in: int) -> None:
    names = CookieNames.for_settings(settings)
    _put(response, settings, names.access, access_token, expires_in, "/", httponly=True)


def set_auth_cookies(response: Response, settings: Settings, sign_in: SignIn) -> None:
    names = CookieNames.for_settings(settings)
    set_access_cookie(response, settings, sign_in.access_token, sign_in.expires_in)
    _put(
        response,
        settings,
        names.refresh,
        sign_in.refresh_token,
        sign_in.refresh_expires_in,
        REFRESH_COOKIE_PATH,
        httponly=True,
    )
    # Readable by the page's script, which echoes it in X-CSRF-Token.
    _put(response, settings, names.csrf, sign_in.csrf_token, sign_in.refresh_expires_in, "/", httponly=False)


def clear_auth_cookies(response: Response, settings: Settings) -> None:
    names = CookieNames.for_settings(settings)
    _put(response, settings, names.access, "", 0, "/", httponly=True)
    _put(response, settings, names.refresh, "", 0, REFRESH_COOKIE_PATH, httponly=True)
    _put(response, settings, names.csrf, "", 0, "/", httponly=False)


def _put(
    response: Response, settings: Settings, name: str, value: str, max_age: int, path: str, *, httponly: bool
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        expires=None if max_age else 0,
        path=path,
        secure=settings.COOKIE_SECURE,
        httponly=httponly,
        samesite=settings.COOKIE_SAMESITE,
    )


def request_cookies(request: Request, settings: Settings) -> tuple[str | None, str | None, str | None]:
    """The (access, refresh, csrf) cookies the request carries."""
    names = CookieNames.for_settings(settings)
    cookies = request.cookies
    return cookies.get(names.access), cookies.get(names.refresh), cookies.get(names.csrf)
