"""The errors of the widget API, and the answers its routes document."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

IDENTITY_NOT_PROVEN = ProblemAnswer(
    403, "an identity claimed without a valid proof signed with the inbox's identity secret"
)
ORIGIN_NOT_ALLOWED = ProblemAnswer(403, "a browser origin not in the inbox's `allowed_origins`")
TOO_MANY_OPEN = ProblemAnswer(409, "the visitor has WIDGET_MAX_OPEN_CONVERSATIONS conversations open")


def inbox_not_found() -> AppError:
    return AppError(404, "inbox_not_found", "No such widget inbox.")


def identity_not_proven(detail: str) -> AppError:
    return AppError(403, "identity_not_proven", f"The identity claimed is not proven: {detail}.")


def too_many_open_conversations(limit: int) -> AppError:
    return AppError(
        409,
        "too_many_open_conversations",
        f"You have {limit} conversations open; continue one of them, or wait until one is resolved.",
    )
