"""The errors of accounts, referenced by name."""

from __future__ import annotations

from aisupport.core.errors import AppError


def email_not_verified() -> AppError:
    return AppError(403, "email_not_verified", "Confirm your email address first: see the email we sent.")
