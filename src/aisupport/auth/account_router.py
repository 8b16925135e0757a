"""/auth: email verification, password reset and change, email change, sessions, account activity."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from aisupport.access.dependencies import Account, ClientInfo
from aisupport.access.routes import public
from aisupport.auth import account_service, errors
from aisupport.auth.cookies import clear_auth_cookies
from aisupport.auth.dependencies import Auth
from aisupport.auth.models import AuthSession
from aisupport.auth.schemas import (
    Accepted,
    ActivityOut,
    ChangeEmailRequest,
    ChangePasswordRequest,
    EmailTokenRequest,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    SessionOut,
    UserOut,
    VerificationRequest,
)
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging

router = APIRouter(prefix="/auth", tags=["account"])

# The routes list the errors of their own rules (declared in auth/errors.py); those of their bodies,
# credentials and limits are documented without a list (aisupport/openapi.py).


@router.post(
    "/verify-email/confirm",
    response_model=UserOut,
    responses=problem_responses(errors.INVALID_LINK, errors.ADDRESS_TAKEN_SINCE_SENT),
)
@public
async def confirm_email(payload: EmailTokenRequest, db: DbSession, auth: Auth, client: ClientInfo) -> UserOut:
    """Use the link from a verification email: the address is verified (or the requested change applies)."""
    user = await account_service.confirm_email(db, auth, payload.token, client)
    return UserOut.model_validate(user)


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(errors.EMAIL_ALREADY_VERIFIED),
)
async def resend_verification(principal: Account, db: DbSession, auth: Auth) -> Accepted:
    """Send the verification email again."""
    await account_service.resend_verification(db, auth, principal.person)
    return Accepted(detail="A new verification email is on its way.")


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
)
@public
async def request_verification(
    payload: VerificationRequest, db: DbSession, auth: Auth, client: ClientInfo
) -> Accepted:
    """Email a new verification link if an account has this address and has not confirmed it yet (for a
    lost or expired link, without signing in). The answer is the same either way."""
    await account_service.request_verification(db, auth, payload.email, client)
    return Accepted(detail="If an account with this address awaits confirmation, a new link is on its way.")


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
)
@public
async def forgot_password(
    payload: ForgotPasswordRequest, db: DbSession, auth: Auth, client: ClientInfo
) -> Accepted:
    """Email a reset link if an account has this address. The answer is the same either way."""
    await account_service.forgot_password(db, auth, payload.email, client)
    return Accepted(detail="If an account uses this address, a reset link is on its way.")


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(errors.INVALID_LINK),
)
@public
async def reset_password(
    payload: ResetPasswordRequest, db: DbSession, auth: Auth, client: ClientInfo
) -> Response:
    """Set a new password with the link from a reset email; every session is signed out."""
    await account_service.reset_password(db, auth, payload.token, payload.new_password, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/change",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(errors.WRONG_PASSWORD),
)
async def change_password(
    payload: ChangePasswordRequest, principal: Account, db: DbSession, auth: Auth, client: ClientInfo
) -> Response:
    """Change your password (the current one is required); your other sessions are signed out, and
    every unused link emailed to you stops working."""
    await account_service.change_password(
        db,
        auth,
        principal.person,
        principal.session_id,
        payload.current_password,
        payload.new_password,
        client,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/email/change",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(errors.WRONG_PASSWORD, errors.EMAIL_UNCHANGED),
)
async def change_email(
    payload: ChangeEmailRequest, principal: Account, db: DbSession, auth: Auth, client: ClientInfo
) -> Accepted:
    """Ask to change your address: a link goes to the new one, and the change applies when it is used
    (unless your password or address changed, or you signed out everywhere, meanwhile)."""
    await account_service.change_email(
        db, auth, principal.person, payload.new_email, payload.password, client
    )
    return Accepted(detail="Confirm the change with the link sent to the new address.")


@router.get("/sessions", response_model=Page[SessionOut])
async def list_sessions(principal: Account, db: DbSession, auth: Auth, paging: Paging) -> Page[SessionOut]:
    """Your signed-in sessions, newest sign-in first; `current` marks this one."""
    rows = await account_service.live_sessions(
        db, auth, principal.person, before=paging.after_time_and_id(), limit=paging.fetch
    )

    def item(session: AuthSession) -> SessionOut:
        return SessionOut(
            id=session.id,
            organization_id=session.organization_id,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=session.expires_at,
            user_agent=session.user_agent,
            ip=str(session.ip) if session.ip is not None else None,
            current=session.id == principal.session_id,
        )

    return paging.page(rows, lambda session: (session.created_at, session.id), item)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def revoke_session(
    session_id: uuid.UUID, principal: Account, db: DbSession, auth: Auth, client: ClientInfo
) -> Response:
    """Sign out one of your sessions; its access token stops working at once."""
    await account_service.revoke_session(db, auth, principal.person, session_id, client)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if session_id == principal.session_id:
        clear_auth_cookies(response, auth.settings)
    return response


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(principal: Account, db: DbSession, auth: Auth, client: ClientInfo) -> Response:
    """Sign out every session of your account, this one included, end every unused link emailed to
    you, and clear the cookies."""
    await account_service.logout_all(db, auth, principal.person, client)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_auth_cookies(response, auth.settings)
    return response


@router.get("/activity", response_model=Page[ActivityOut])
async def list_activity(principal: Account, db: DbSession, paging: Paging) -> Page[ActivityOut]:
    """Security events of your account, newest first: sign-ins and failed sign-ins, sign-outs, password
    and address changes, with the IP address and user agent they came from."""
    position = paging.after(int)
    rows = await account_service.activity_list(
        db, principal.person, before_id=position[0] if position else None, limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row.id,), ActivityOut.model_validate)
