"""The errors of the knowledge base, and the answers its routes document."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

SLUG_TAKEN = ProblemAnswer(409, "another source of the organization has this slug (`slug_taken`)")


def source_not_found() -> AppError:
    return AppError(404, "knowledge_source_not_found", "No such knowledge source.")


def slug_taken() -> AppError:
    return AppError(409, "slug_taken", "Another source of this organization has this slug.")


def help_centre_not_found() -> AppError:
    return AppError(404, "help_centre_not_found", "No such help centre.")
