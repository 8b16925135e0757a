"""Password policy (NIST SP 800-63B): length bounds and a list of common passwords, nothing else.

The list is zxcvbn's bundled 30,000 most common passwords (from the maintained `zxcvbn` package), so
it ships with the code and needs no download.
"""

from __future__ import annotations

import unicodedata
from functools import cache

from zxcvbn.frequency_lists import FREQUENCY_LISTS

from aisupport.core.errors import AppError

MIN_LENGTH = 8
MAX_LENGTH = 128


class PasswordRejected(AppError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(422, code, detail)


def normalize_password(password: str) -> str:
    """NFKC, as NIST advises, so the same password typed on two keyboards verifies the same."""
    return unicodedata.normalize("NFKC", password)


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, *, email: str) -> None:
    """Raise PasswordRejected (422) unless `password` (already normalized) meets the policy."""
    length = len(password)
    if length < MIN_LENGTH:
        raise PasswordRejected(
            "password_too_short", f"The password must have at least {MIN_LENGTH} characters."
        )
    if length > MAX_LENGTH:
        raise PasswordRejected(
            "password_too_long", f"The password must have at most {MAX_LENGTH} characters."
        )
    lowered = password.casefold()
    local_part = email.rsplit("@", 1)[0].casefold()
    if lowered in _common_passwords() or lowered in (email.casefold(), local_part):
        raise PasswordRejected(
            "password_too_common", "The password is too common or too easy to guess; choose another."
        )
