"""The browser transport: HttpOnly token cookies plus a readable CSRF cookie.

With COOKIE_SECURE=true the names carry the `__Host-` prefix (Path=/, no Domain) or, for the refresh
and device cookies whose Path is /auth, the `__Secure-` prefix, so a sibling subdomain cannot plant them.
The device cookie (auth/devices.py) outlives sessions: signing out leaves the device trusted.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aisupport.access.cookies import CookieNames
from aisupport.auth.service import SignIn
from aisupport.core.config import Settings

REFRESH_COOKIE_PATH = "/auth"
DEVICE_COOKIE_PATH = "/auth"  # only /auth routes receive it; login reads it


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
    if sign_in.device_token is not None:
        max_age = settings.DEVICE_TOKEN_EXPIRE_DAYS * 24 * 3600
        device_token = sign_in.device_token
        _put(response, settings, names.device, device_token, max_age, DEVICE_COOKIE_PATH, httponly=True)


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


def device_cookie(request: Request, settings: Settings) -> str | None:
    """The device token the browser holds, if any (read by login only)."""
    return request.cookies.get(CookieNames.for_settings(settings).device)
