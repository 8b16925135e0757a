"""The errors of contacts, referenced by name; beside them, the answers the routes document for them
(`problem_responses`)."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

CONTACT_EXISTS = ProblemAnswer(409, "another contact has this email or external_id")
CONTACT_ERASED = ProblemAnswer(409, "the contact was erased")
MERGE_WITH_ITSELF = ProblemAnswer(422, "a contact cannot be merged into itself")
ATTRIBUTES_TOO_LARGE = ProblemAnswer(422, "the merged custom attributes would exceed their bounds")


def contact_not_found() -> AppError:
    return AppError(404, "contact_not_found", "No such contact.")


def contact_exists(field: str) -> AppError:
    """`field`: the unique field already in use, `email` or `external_id`."""
    return AppError(409, "contact_exists", f"Another contact has this {field}.")


def contact_erased() -> AppError:
    return AppError(409, "contact_erased", "This contact was erased: its personal data is gone.")


def merge_with_itself() -> AppError:
    return AppError(422, "merge_with_itself", "A contact cannot be merged into itself.")


def attributes_too_large(reason: str) -> AppError:
    return AppError(422, "attributes_too_large", f"The merged custom attributes {reason}.")
