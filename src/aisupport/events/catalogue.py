"""The event catalogue, written once: every event type, who may see it, and its payload.

docs/events.md is rendered from this table (`render_catalogue`) and a test keeps the two equal. Every
event has the same envelope (`Envelope`); `data` is the payload described here. Resources in payloads are
the API's own representations, as the matching GET returns them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aisupport.access.permissions import Permission


@dataclass(frozen=True)
class EventType:
    name: str
    permission: Permission  # what a member's stream (or a webhook's organization role) needs to see it
    payload: str  # the fields of `data`, for the documentation
    when: str


CONVERSATION = "`conversation`: the conversation as `GET .../conversations/{id}` shows it, after the change"
CATALOGUE = {
    event.name: event
    for event in (
        EventType(
            "conversation.created",
            Permission.CONVERSATIONS_READ,
            CONVERSATION,
            "a conversation is opened (its first message, if any, follows as `message.created`)",
        ),
        EventType(
            "conversation.updated",
            Permission.CONVERSATIONS_READ,
            f"{CONVERSATION}; `changes`: each changed field with its value before",
            "a PATCH changed fields (status and assignee changes also have their own event, after this one)",
        ),
        EventType(
            "conversation.assigned",
            Permission.CONVERSATIONS_READ,
            f"{CONVERSATION}; `previous_assignee_id` (null if it was unassigned)",
            "the assignee changed: by a member, auto-assignment, or a member leaving (then to null)",
        ),
        EventType(
            "conversation.status_changed",
            Permission.CONVERSATIONS_READ,
            f"{CONVERSATION}; `previous_status`",
            "the status changed: by a member, a customer message reopening it, a snooze waking",
        ),
        EventType(
            "conversation.sla_breached",
            Permission.CONVERSATIONS_READ,
            f"{CONVERSATION}; `target`: `first_response`, `next_response` or `resolution`",
            "an SLA clock ran past its due time (marked by the periodic job)",
        ),
        EventType(
            "conversation.rated",
            Permission.CONVERSATIONS_READ,
            f"{CONVERSATION}; `rating`: `score` (1 to 5), `comment`, `updated_at`",
            "the customer rated the resolved conversation in the widget (again: the rating was replaced)",
        ),
        EventType(
            "message.created",
            Permission.CONVERSATIONS_READ,
            "`message`: as `GET .../messages` lists it (notes and activity are `private`)",
            "a message is added: by the customer, a member, an API key, the system",
        ),
        EventType(
            "message.updated",
            Permission.CONVERSATIONS_READ,
            "`message`: as `GET .../messages` lists it, after the change",
            "a message changed (reserved: nothing edits messages yet; an erasure says `contact.deleted`)",
        ),
        EventType(
            "webhook.test",
            Permission.WEBHOOKS_MANAGE,
            "`endpoint_id`: the endpoint tested (its `sequence` is 0: it is not in the outbox)",
            "an admin asked for a test of a webhook endpoint (sent to that endpoint only, never to streams)",
        ),
        EventType(
            "contact.created",
            Permission.CONTACTS_READ,
            "`contact`: as `GET .../contacts/{id}` shows it",
            "a contact is created",
        ),
        EventType(
            "contact.updated",
            Permission.CONTACTS_READ,
            "`contact`: as `GET .../contacts/{id}` shows it, after the change; `changes`: each changed "
            "field with its value before",
            "a contact's fields changed",
        ),
        EventType(
            "contact.merged",
            Permission.CONTACTS_READ,
            "`contact`: the contact kept, after the merge; `merged_contact_id`: the one merged into it "
            "(gone)",
            "two contacts were merged (the merged one's conversations moved to the one kept)",
        ),
        EventType(
            "contact.deleted",
            Permission.CONTACTS_READ,
            "`contact_id` only: no personal data",
            "a contact was erased (its personal data and message bodies removed)",
        ),
        EventType(
            "ai.handoff",
            Permission.CONVERSATIONS_READ,
            f"{CONVERSATION}; `reason`: one of the hand-off reasons (docs/ai.md); `detail`: what "
            "set it off (a topic, a confidence), or null",
            "the AI handed a conversation to a person (silent there until a member turns it back on)",
        ),
        EventType(
            "ai.budget_threshold",
            Permission.AI_READ,
            "`percent` (80 or 100), `month`, `used_tokens`, `used_cost`, `token_budget`, `cost_budget`",
            "the organization's AI usage this month reached 80% or 100% of its budget (once per level and "
            "month)",
        ),
    )
}


def render_catalogue() -> str:
    """The catalogue as a Markdown table (docs/events.md)."""
    lines = ["| type | when | `data` | stream permission |", "|---|---|---|---|"]
    for event in CATALOGUE.values():
        lines.append(f"| `{event.name}` | {event.when} | {event.payload} | `{event.permission}` |")
    return "\n".join(lines) + "\n"
