"""The errors of organizations, members, invitations and API keys, referenced by name; beside them,
the answers the routes document for them (`problem_responses`). A missing organization is access's
(`access.errors.organization_not_found`): the principal answers it first."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

SLUG_TAKEN = ProblemAnswer(409, "another organization uses this slug")
LAST_OWNER = ProblemAnswer(409, "the organization would be left without an owner")
CONFIRMATION_MISMATCH = ProblemAnswer(422, "`confirm` is not the organization's slug")
ALREADY_MEMBER = ProblemAnswer(409, "this person is already a member")
INVALID_INVITATION = ProblemAnswer(
    400, "the invitation is invalid, expired, revoked, withdrawn or used (`invalid_link`)"
)
INVITATION_FOR_ANOTHER_ADDRESS = ProblemAnswer(403, "the invitation was sent to another address")


def slug_taken() -> AppError:
    return AppError(409, "slug_taken", "Another organization uses this slug.")


def last_owner() -> AppError:
    return AppError(409, "last_owner", "An organization needs an owner: make someone else owner first.")


def confirmation_mismatch() -> AppError:
    return AppError(422, "confirmation_mismatch", "Type the organization's slug to confirm its deletion.")


def member_not_found() -> AppError:
    return AppError(404, "member_not_found", "No such member.")


def role_above_yours(what: str) -> AppError:
    """`what`: the verb phrase refused, as in "You cannot {what} a role above your own."."""
    return AppError(403, "role_above_yours", f"You cannot {what} a role above your own.")


def already_member() -> AppError:
    return AppError(409, "already_member", "This person is already a member.")


def already_member_yourself() -> AppError:
    return AppError(409, "already_member", "You are already a member of this organization.")


def invitation_not_found() -> AppError:
    return AppError(404, "invitation_not_found", "No such pending invitation.")


def invalid_invitation() -> AppError:
    return AppError(400, "invalid_link", "This invitation is invalid, expired, revoked or already used.")


def invitation_withdrawn() -> AppError:
    return AppError(
        400,
        "invalid_link",
        "This invitation was withdrawn: whoever sent it may no longer invite. Ask for a new one.",
    )


def invitation_for_another_address() -> AppError:
    return AppError(403, "invitation_for_another_address", "This invitation was sent to another address.")


def expiry_in_the_past() -> AppError:
    return AppError(422, "expiry_in_the_past", "expires_at must be in the future.")


def api_key_not_found() -> AppError:
    return AppError(404, "api_key_not_found", "No such API key.")
