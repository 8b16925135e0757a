"""The errors of signing up and in, sessions, and the account's life, referenced by name; beside them,
the answers the routes document for them (`problem_responses`)."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer, Unauthorized

WRONG_CREDENTIALS = ProblemAnswer(401, "the email or password is wrong")
CANNOT_SIGN_IN = ProblemAnswer(403, "the address is not verified yet, or the account has no organization")
EMAIL_TAKEN = ProblemAnswer(409, "an account uses this address")
INVALID_REFRESH_TOKEN = ProblemAnswer(401, "the refresh token is invalid, expired, revoked or reused")
ALREADY_MEMBER_OR_ACCOUNT_EXISTS = ProblemAnswer(
    409, "you are already a member, or an account uses the address: sign in, then accept"
)
INVALID_LINK = ProblemAnswer(400, "the link is invalid, expired or already used (`invalid_link`)")
WRONG_PASSWORD = ProblemAnswer(403, "the current password is wrong")
ADDRESS_TAKEN_SINCE_SENT = ProblemAnswer(
    409, "the address is taken by another account since the link was sent"
)
EMAIL_ALREADY_VERIFIED = ProblemAnswer(409, "the address is already verified")
EMAIL_UNCHANGED = ProblemAnswer(409, "this is already the account's address")


def invalid_credentials(*, keep_changes: bool = False) -> Unauthorized:
    return Unauthorized(
        "invalid_credentials", "The email or password is incorrect.", keep_changes=keep_changes
    )


def invalid_refresh_token(*, keep_changes: bool = False) -> Unauthorized:
    return Unauthorized(
        "invalid_refresh_token",
        "The refresh token is invalid, expired or revoked. Sign in again.",
        keep_changes=keep_changes,
    )


def not_a_member() -> AppError:
    return AppError(403, "not_a_member", "You are not a member of that organization.")


def no_organization() -> AppError:
    return AppError(403, "no_organization", "You do not belong to any organization.")


def email_taken() -> AppError:
    return AppError(409, "email_taken", "An account with this email already exists.")


def account_exists() -> AppError:
    return AppError(409, "account_exists", "An account uses this address: sign in, then accept.")


def password_required() -> AppError:
    return AppError(
        422, "password_required", "Sign in to accept, or choose a password to create your account."
    )


def invalid_account_link() -> AppError:
    # One answer for unknown, used, expired and no-longer-bound tokens.
    return AppError(400, "invalid_link", "This link is invalid, expired or already used.")


def email_already_verified() -> AppError:
    return AppError(409, "email_already_verified", "This email address is already verified.")


def email_unchanged() -> AppError:
    return AppError(409, "email_unchanged", "This is already the account's email address.")


def session_not_found() -> AppError:
    return AppError(404, "session_not_found", "No such session.")


def invalid_current_password() -> AppError:
    return AppError(403, "invalid_current_password", "The current password is not correct.")
