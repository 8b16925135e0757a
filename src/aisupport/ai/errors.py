"""The errors of the AI, and the answers its routes document."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

PROVIDER_REFUSED = ProblemAnswer(
    422, "the base URL is not one the service may reach, or not a URL (`provider_refused`)"
)
DRAFT_DECIDED = ProblemAnswer(409, "the draft was sent or discarded already (`draft_decided`)")
SETTINGS_CHANGED = ProblemAnswer(
    412, "the settings changed since the version given in If-Match (`precondition_failed`)"
)
NOTHING_TO_ANSWER = ProblemAnswer(
    422, "the conversation has no customer message to answer (`nothing_to_answer`)"
)
EVALUATION_SET = ProblemAnswer(
    422, "a labelled set too small, or its labels not usable (`evaluation_set_invalid`)"
)


def provider_refused(reason: str) -> AppError:
    return AppError(422, "provider_refused", f"The base URL is refused: {reason}.")


def draft_not_found() -> AppError:
    return AppError(404, "draft_not_found", "No such draft.")


def draft_decided(status: str) -> AppError:
    return AppError(409, "draft_decided", f"The draft was {status} already.")


def nothing_to_answer() -> AppError:
    return AppError(422, "nothing_to_answer", "The conversation has no customer message to answer.")


def settings_changed() -> AppError:
    return AppError(
        412, "precondition_failed", "The AI settings changed since the version given in If-Match."
    )


def evaluation_not_found() -> AppError:
    return AppError(404, "evaluation_not_found", "No such evaluation.")


def example_not_found() -> AppError:
    return AppError(404, "example_not_found", "No such example.")
