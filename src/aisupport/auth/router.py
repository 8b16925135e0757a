"""/auth: sign-up, sign-in (cookie or body transport), refresh, sign-out, who am I."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.responses import JSONResponse

from aisupport.access.cache import Snapshot
from aisupport.access.cookies import request_cookies
from aisupport.access.dependencies import (
    Account,
    ClientInfo,
    api_key_scheme,
    bearer_scheme,
    current_principal,
    require_csrf,
    requires,
)
from aisupport.access.errors import CSRF_REFUSED, ORGANIZATION_NOT_FOUND
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.access.routes import public
from aisupport.auth import errors, service
from aisupport.auth.cookies import clear_auth_cookies, device_cookie, set_access_cookie, set_auth_cookies
from aisupport.auth.dependencies import Auth
from aisupport.auth.schemas import (
    ApiKeyIdentity,
    InvitationAccept,
    InvitationAccepted,
    LoginRequest,
    MembershipOut,
    MeResponse,
    OrganizationSummary,
    PasswordGrantForm,
    RefreshRequest,
    SignupPending,
    SignupRequest,
    SwitchOrganization,
    TokenResponse,
    Transport,
    UserIdentity,
    UserOut,
    WhoAmI,
)
from aisupport.auth.service import AuthComponents, SignIn
from aisupport.core.db import DbSession, request_session
from aisupport.core.errors import problem_responses
from aisupport.core.schemas import require_storable
from aisupport.core.security import InvalidToken
from aisupport.organizations import errors as organization_errors
from aisupport.organizations import schemas as organization_schemas
from aisupport.organizations import service as organizations

AUTH_MAX_BODY_BYTES = 64 * 1024

# Any member of the organization, person or API key: every role and every key holds org:read.
Member = Annotated[Principal, Depends(requires(Permission.ORG_READ))]

router = APIRouter(prefix="/auth", tags=["auth"])

# The routes list the errors of their own rules (declared in auth/errors.py); those of their bodies,
# credentials and limits are documented without a list (aisupport/openapi.py).

# Accepting an invitation ends in a sign-in, so it is auth's; it is listed with the organizations.
invitations_router = APIRouter(tags=["organizations"])


def answer_sign_in(
    response: Response, auth: AuthComponents, sign_in: SignIn, transport: Transport
) -> TokenResponse:
    body = TokenResponse(
        token_type="bearer",
        access_token=sign_in.access_token,
        expires_in=sign_in.expires_in,
        user=UserOut.model_validate(sign_in.user),
        organization=OrganizationSummary.model_validate(sign_in.organization),
        role=sign_in.role,
    )
    if transport == "cookie":
        set_auth_cookies(response, auth.settings, sign_in)
    else:
        body.refresh_token = sign_in.refresh_token
        body.refresh_expires_in = sign_in.refresh_expires_in
        if sign_in.device_token is not None:
            body.device_token = sign_in.device_token
    response.headers["Cache-Control"] = "no-store"
    return body


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenResponse,
    response_model_exclude_unset=True,
    responses={
        202: {
            "model": SignupPending,
            "description": "REQUIRE_EMAIL_VERIFICATION is on: confirm, then sign in",
        },
        **problem_responses(errors.EMAIL_TAKEN),
    },
)
@public
async def signup(
    payload: SignupRequest, response: Response, db: DbSession, auth: Auth, client: ClientInfo
) -> TokenResponse | JSONResponse:
    """Create an account and its organization (you become its owner), email a link to confirm the
    address, and sign in; with REQUIRE_EMAIL_VERIFICATION, answer 202 and sign in after confirming."""
    sign_in = await service.signup(
        db,
        auth,
        email=payload.email,
        password=payload.password,
        full_name=payload.full_name,
        organization_name=payload.organization_name,
        client=client,
    )
    if sign_in is None:
        return JSONResponse(SignupPending().model_dump(), status_code=status.HTTP_202_ACCEPTED)
    return answer_sign_in(response, auth, sign_in, payload.transport)


@router.post(
    "/login",
    response_model=TokenResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(errors.WRONG_CREDENTIALS, errors.CANNOT_SIGN_IN),
)
@public
async def login(
    payload: LoginRequest,
    request: Request,
    response: Response,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
) -> TokenResponse:
    """Sign in. `transport=cookie` (default) sets HttpOnly cookies; `body` returns the refresh token.

    Either way the answer carries a device token (cookie, or `device_token` in the body); presenting it
    at the next login keeps this client signing in while others fail on the same address."""
    sign_in = await service.login(
        db,
        auth,
        email=payload.email,
        password=payload.password,
        organization_id=payload.organization_id,
        client=client,
        device_token=payload.device_token or device_cookie(request, auth.settings),
    )
    return answer_sign_in(response, auth, sign_in, payload.transport)


@router.post(
    "/token",
    response_model=TokenResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(errors.WRONG_CREDENTIALS, errors.CANNOT_SIGN_IN),
)
@public
async def token(
    form: Annotated[PasswordGrantForm, Form()],
    request: Request,
    response: Response,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
) -> TokenResponse:
    """OAuth2 password form (`username` is the email), for Swagger's Authorize button and scripts.
    The device token is read from the device cookie only (the form has no field for it)."""
    require_storable(username=form.username, password=form.password)
    sign_in = await service.login(
        db,
        auth,
        email=form.username,
        password=form.password,
        organization_id=None,
        client=client,
        device_token=device_cookie(request, auth.settings),
    )
    return answer_sign_in(response, auth, sign_in, "body")


@router.get("/me", response_model=MeResponse)
async def me(request: Request, principal: Account) -> Response:
    """The signed-in user, the organization of this session, the role in it, and all memberships."""
    # Kept with the principal's snapshot (evicted with it when the user, a membership or an
    # organization changes): most calls answer without the database.
    snapshot: Snapshot = request.state.snapshot

    async def answer() -> bytes:
        async with request_session(request) as db:
            user, organization, role, memberships = await service.profile(
                db, principal.person, principal.organization_id
            )
        return (
            MeResponse(
                user=UserOut.model_validate(user),
                organization=OrganizationSummary.model_validate(organization),
                role=role,
                organizations=[
                    MembershipOut(id=org.id, name=org.name, slug=org.slug, role=org_role)
                    for org, org_role in memberships
                ],
            )
            .model_dump_json()
            .encode()
        )

    body: bytes = await snapshot.derived("me", answer)
    return Response(body, media_type="application/json")


@router.get("/whoami", response_model=WhoAmI)
async def whoami(principal: Member, db: DbSession) -> WhoAmI:
    """Who is calling, for every credential (an API key too): the kind of principal, its organization,
    its effective role and permissions, and the person or the key (never its secret)."""
    identity = await service.identify(db, principal)
    return WhoAmI(
        kind="api_key" if principal.api_key_id is not None else "user",
        organization=OrganizationSummary.model_validate(identity.organization),
        role=principal.role,
        permissions=sorted(principal.permissions),
        user=UserIdentity.model_validate(identity.user) if identity.user else None,
        api_key=ApiKeyIdentity.model_validate(identity.api_key) if identity.api_key else None,
    )


@router.post(
    "/refresh",
    response_model=TokenResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(errors.INVALID_REFRESH_TOKEN, CSRF_REFUSED),
)
@public
async def refresh(
    request: Request,
    response: Response,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
    payload: RefreshRequest | None = None,
) -> TokenResponse:
    """Rotate the refresh token (from the JSON body, or the cookie with X-CSRF-Token)."""
    transport: Transport
    if payload is not None:
        refresh_token, transport = payload.refresh_token, "body"
    else:
        _, cookie_token, _ = request_cookies(request, auth.settings)
        if not cookie_token:
            raise errors.invalid_refresh_token()
        require_csrf(request, auth, session_id=None)
        refresh_token, transport = cookie_token, "cookie"
    sign_in = await service.refresh(db, auth, refresh_token=refresh_token, client=client)
    if transport == "cookie":
        # The CSRF cookie is bound to the session: check it now that the session is known.
        require_csrf(request, auth, sign_in.session_id)
    return answer_sign_in(response, auth, sign_in, transport)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(CSRF_REFUSED),
)
@public
async def logout(
    request: Request,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
    bearer_token: Annotated[str | None, Depends(bearer_scheme)],
    payload: RefreshRequest | None = None,
) -> Response:
    """Sign out: revoke this session (refresh and access tokens) and clear the cookies. Repeatable."""
    session_id: uuid.UUID | None = None
    access_cookie, refresh_cookie, _ = request_cookies(request, auth.settings)
    if bearer_token is not None:
        session_id = _session_of_access_token(auth, bearer_token)
    elif payload is not None:
        session_id = await service.session_of_refresh_token(db, payload.refresh_token)
    elif access_cookie or refresh_cookie:
        if access_cookie:
            session_id = _session_of_access_token(auth, access_cookie)
        if session_id is None and refresh_cookie:
            session_id = await service.session_of_refresh_token(db, refresh_cookie)
        require_csrf(request, auth, session_id)
    if session_id is not None:
        await service.logout(db, auth, session_id, client)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_auth_cookies(response, auth.settings)
    return response


def _session_of_access_token(auth: AuthComponents, token: str) -> uuid.UUID | None:
    try:
        return auth.access_tokens.decode(token).session_id
    except InvalidToken:
        return None


@router.post(
    "/switch-org",
    response_model=TokenResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(ORGANIZATION_NOT_FOUND),
)
async def switch_organization(
    payload: SwitchOrganization,
    response: Response,
    principal: Account,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
) -> TokenResponse:
    """A new access token for another organization you belong to, in the same session (the refresh
    token is unchanged and refreshes into the new organization from now on)."""
    grant = await service.switch_organization(
        db,
        auth,
        user_id=principal.person,
        session_id=principal.session,
        organization_id=payload.organization_id,
        client=client,
    )
    if principal.via == "cookie":
        set_access_cookie(response, auth.settings, grant.access_token, grant.expires_in)
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        token_type="bearer",
        access_token=grant.access_token,
        expires_in=grant.expires_in,
        user=UserOut.model_validate(grant.user),
        organization=OrganizationSummary.model_validate(grant.organization),
        role=grant.role,
    )


@invitations_router.post(
    "/invitations/accept",
    response_model=InvitationAccepted | TokenResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(
        organization_errors.INVALID_INVITATION,
        organization_errors.INVITATION_FOR_ANOTHER_ADDRESS,
        CSRF_REFUSED,  # signed in with cookies: this route reads the credentials itself
        errors.ALREADY_MEMBER_OR_ACCOUNT_EXISTS,
    ),
)
@public
async def accept_invitation(
    request: Request,
    response: Response,
    payload: InvitationAccept,
    db: DbSession,
    auth: Auth,
    client: ClientInfo,
    bearer_token: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> InvitationAccepted | TokenResponse:
    """Accept an invitation: signed in, as the invited address (verified); or, without an account,
    with a password, which creates the account and signs it in."""
    await auth.rate_limiter.hit(
        auth.settings.rate_limits["account_token_ip"], "account-token-ip", client.ip or "unknown"
    )
    signed_in = bearer_token is not None or api_key is not None or request_cookies(request, auth.settings)[0]
    if signed_in:
        principal = await current_principal(request, bearer_token, api_key)
        organization, role = await organizations.accept_as_signed_in(db, principal, payload.token, client)
        return InvitationAccepted(
            organization=organization_schemas.OrganizationOut.model_validate(organization), role=role
        )
    if payload.password is None:
        raise errors.password_required()
    sign_in = await service.accept_invitation_by_signing_up(
        db, auth, payload.token, payload.password, payload.full_name, client
    )
    response.status_code = status.HTTP_201_CREATED  # an account was created (and its cookies set)
    return answer_sign_in(response, auth, sign_in, payload.transport)
