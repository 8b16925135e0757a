"""The errors of inboxes, teams, SLA policies and availability, referenced by name; beside them, the
answers the routes document for them (`problem_responses`)."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

TEAM_NAME_TAKEN = ProblemAnswer(409, "another team of the organization has this name")
ALREADY_IN_TEAM = ProblemAnswer(409, "this member is already in the team")
NOT_A_MEMBER = ProblemAnswer(422, "`user_id` is not a member of the organization")
UNKNOWN_REFERENCE = ProblemAnswer(422, "`team_id` or `sla_policy_id` names nothing in this organization")
NO_IDENTITY_SECRET = ProblemAnswer(422, "an `api` inbox has no identity secret")
ORIGINS_FOR_WIDGETS_ONLY = ProblemAnswer(422, "`allowed_origins` on an `api` inbox")


def inbox_not_found() -> AppError:
    return AppError(404, "inbox_not_found", "No such inbox.")


def team_not_found() -> AppError:
    return AppError(404, "team_not_found", "No such team.")


def sla_policy_not_found() -> AppError:
    return AppError(404, "sla_policy_not_found", "No such SLA policy.")


def team_member_not_found() -> AppError:
    return AppError(404, "team_member_not_found", "This member is not in the team.")


def team_name_taken() -> AppError:
    return AppError(409, "team_name_taken", "Another team of the organization has this name.")


def already_in_team() -> AppError:
    return AppError(409, "already_in_team", "This member is already in the team.")


def not_a_member() -> AppError:
    return AppError(422, "not_an_organization_member", "user_id is not a member of this organization.")


def unknown_team() -> AppError:
    return AppError(422, "unknown_reference", "team_id names no team of this organization.")


def unknown_sla_policy() -> AppError:
    return AppError(422, "unknown_reference", "sla_policy_id names no SLA policy of this organization.")


def no_identity_secret() -> AppError:
    return AppError(422, "no_identity_secret", "An api inbox has no identity secret; only widget inboxes do.")


def origins_for_widgets_only() -> AppError:
    return AppError(422, "origins_for_widgets_only", "allowed_origins is for widget inboxes only.")


# --- Conversations and messages -----------------------------------------------------------------------

PRECONDITION_FAILED = ProblemAnswer(412, "`If-Match` names another version (`precondition_failed`)")
UNKNOWN_CONVERSATION_REFERENCE = ProblemAnswer(
    422, "`inbox_id`, `contact_id` or `team_id` names nothing in this organization"
)
NOT_AN_AGENT = ProblemAnswer(422, "`assignee_id` is not a member with the agent role or above")
SNOOZE_NEEDS_TIME = ProblemAnswer(422, "status `snoozed` without a future `snoozed_until`")
IDEMPOTENCY_KEY_REUSED = ProblemAnswer(409, "this `Idempotency-Key` came with another request")
BAD_LIST_REQUEST = ProblemAnswer(
    422,
    "a range whose start is not before its end (`bad_range`), `sort=relevance` without `q` "
    "(`relevance_needs_q`), a `q` with no word to look for (`search_without_words`)",
)


def conversation_not_found() -> AppError:
    return AppError(404, "conversation_not_found", "No such conversation.")


NOT_RESOLVED = ProblemAnswer(409, "only a resolved conversation can be rated (`conversation_not_resolved`)")


def conversation_not_resolved() -> AppError:
    return AppError(409, "conversation_not_resolved", "Only a resolved conversation can be rated.")


def rating_not_found() -> AppError:
    return AppError(404, "rating_not_found", "This conversation has not been rated.")


def precondition_failed() -> AppError:
    return AppError(412, "precondition_failed", "The conversation changed: If-Match names another version.")


def unknown_reference(field: str) -> AppError:
    return AppError(422, "unknown_reference", f"{field} names nothing in this organization.")


def not_an_agent() -> AppError:
    return AppError(422, "assignee_not_an_agent", "assignee_id is not a member with the agent role or above.")


def snooze_needs_time() -> AppError:
    return AppError(422, "snooze_needs_time", "Status snoozed needs snoozed_until in the future.")


def contact_erased() -> AppError:
    return AppError(409, "contact_erased", "This contact was erased.")


def idempotency_key_reused() -> AppError:
    return AppError(409, "idempotency_key_reused", "This Idempotency-Key came with another request.")


def no_me() -> AppError:
    return AppError(422, "assignee_me_needs_a_member", "assignee=me needs a signed-in member.")


def bad_assignee() -> AppError:
    return AppError(422, "bad_assignee", "assignee is a user id, me or unassigned.")


# --- Tags -----------------------------------------------------------------------------------------------

TAG_NAME_TAKEN = ProblemAnswer(409, "another tag of the organization has this name")


def tag_not_found() -> AppError:
    return AppError(404, "tag_not_found", "No such tag.")


def tag_name_taken() -> AppError:
    return AppError(409, "tag_name_taken", "Another tag of the organization has this name.")


def tags_changed() -> AppError:
    return AppError(409, "tags_changed", "The organization's tags were changing meanwhile; try again.")


# --- Attachments ------------------------------------------------------------------------------------------

ATTACHMENT_TOO_LARGE = ProblemAnswer(
    413, "the file is larger than `ATTACHMENT_MAX_BYTES`; nothing was stored"
)
UNUSABLE_ATTACHMENT = ProblemAnswer(
    422,
    "an `attachment_ids` entry is not an upload of this conversation (`unknown_attachment`) or is "
    "attached to a message already (`attachment_already_attached`)",
)


def attachment_not_found() -> AppError:
    return AppError(404, "attachment_not_found", "No such attachment.")


def attachment_too_large(limit: int = 0) -> AppError:
    return AppError(
        413, "attachment_too_large", f"The file is larger than {limit} bytes; nothing was stored."
    )


def unknown_attachment() -> AppError:
    return AppError(
        422, "unknown_attachment", "An attachment_ids entry names no upload of this conversation."
    )


def attachment_already_attached() -> AppError:
    return AppError(
        422, "attachment_already_attached", "An attachment_ids entry is attached to a message already."
    )


def bad_range(name: str) -> AppError:
    return AppError(422, "bad_range", f"{name}_after must be before {name}_before.")


def relevance_needs_search() -> AppError:
    return AppError(422, "relevance_needs_q", "sort=relevance needs a search (q).")


def search_without_words() -> AppError:
    return AppError(
        422, "search_without_words", "q names no word to look for (only punctuation or exclusions)."
    )
