"""A conversation's SLA clocks (issue 11, point 7; decision 0039): pure code on the conversation's row,
no database. The conversation service calls it on every change that moves a clock; the periodic job
(conversations/tasks.py) marks the breaches through the same service.

Three clocks, each counted in the inbox's business hours (conversations/sla_clock.py) against the
target of the inbox's SLA policy for the conversation's priority:

- **first response**: from creation until the first `outgoing` message (met: `first_response_at`);
- **next response**: from an `incoming` message that arrives after the first response while no reply
  is awaited, until the next `outgoing` message (met);
- **resolution**: from creation until resolved (met: `resolved_at`); time spent `pending` or `snoozed`
  does not count (the pauses), so leaving those states moves the due time later by the business time
  spent in them.

A clock is *running* until met, stopped or breached. `refresh` recomputes the due time of every
running clock (a priority, policy or business-hours change); a breached clock keeps its due time,
which is also its `breached_at` (the instant the target was missed). Resolving stops the clocks (a
first response or a reply not given is no longer due); reopening restarts resolution, and first
response if it was never given nor breached; the next incoming message starts a next-response wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aisupport.conversations.sla_clock import BusinessHours, Pause, due_at

if TYPE_CHECKING:
    from aisupport.conversations.models import Conversation

TARGETS = ("first_response", "next_response", "resolution")
PAUSED = ("pending", "snoozed")
LABELS = {"first_response": "first response", "next_response": "next response", "resolution": "resolution"}


@dataclass(frozen=True)
class Setting:
    """What an inbox's conversations are measured by: its policy's targets (every priority; None
    without a policy) and its business hours."""

    targets: Mapping[str, Any] | None
    hours: BusinessHours

    @classmethod
    def of(cls, targets: Mapping[str, Any] | None, business_hours: Mapping[str, Any] | None) -> Setting:
        return cls(targets, BusinessHours.from_stored(business_hours))

    def minutes(self, priority: str) -> dict[str, int] | None:
        """The targets in minutes for `priority`, by name (the ones measured); None without a policy."""
        if self.targets is None:
            return None
        found = self.targets.get(priority) or {}
        return {name: int(found[name]) for name in TARGETS if found.get(name) is not None}


# --- Which clocks run ------------------------------------------------------------------------------


def _first_running(conversation: Conversation) -> bool:
    return (
        conversation.sla_first_response_started_at is not None
        and conversation.first_response_at is None
        and conversation.sla_first_response_breached_at is None
        and conversation.status != "resolved"
    )


def _next_awaited(conversation: Conversation) -> bool:
    """A customer message is waiting for a reply (breached or not)."""
    return (
        conversation.sla_next_response_started_at is not None
        and conversation.sla_next_response_met_at is None
    )


def _next_running(conversation: Conversation) -> bool:
    return _next_awaited(conversation) and conversation.sla_next_response_breached_at is None


def _resolution_running(conversation: Conversation) -> bool:
    return (
        conversation.sla_resolution_started_at is not None
        and conversation.sla_resolution_breached_at is None
        and conversation.status != "resolved"
    )


RUNNING = {
    "first_response": _first_running,
    "next_response": _next_running,
    "resolution": _resolution_running,
}


def _pauses(conversation: Conversation) -> list[Pause]:
    return [
        (datetime.fromisoformat(str(start)), datetime.fromisoformat(end) if end else None)
        for start, end in conversation.sla_pauses
    ]


def _state(conversation: Conversation) -> tuple[Any, ...]:
    return (
        conversation.sla_targets,
        conversation.sla_first_response_due_at,
        conversation.sla_next_response_due_at,
        conversation.sla_resolution_due_at,
    )


# --- The one computation ---------------------------------------------------------------------------------


def refresh(conversation: Conversation, setting: Setting) -> bool:
    """Take the targets in force for the conversation's priority and recompute the due time of every
    running clock from its start (resolution without its pauses: None while paused, the clock being
    stopped). Breached, met and stopped clocks keep theirs. True if anything changed."""
    before = _state(conversation)
    targets = setting.minutes(conversation.priority)
    conversation.sla_targets = targets
    minutes = targets or {}

    def due(name: str, start: datetime | None, pauses: list[Pause] | None = None) -> datetime | None:
        target = minutes.get(name)
        if start is None or target is None:
            return None
        return due_at(start, target, setting.hours, pauses or ())

    if _first_running(conversation):
        conversation.sla_first_response_due_at = due(
            "first_response", conversation.sla_first_response_started_at
        )
    if _next_running(conversation):
        conversation.sla_next_response_due_at = due(
            "next_response", conversation.sla_next_response_started_at
        )
    if _resolution_running(conversation):
        conversation.sla_resolution_due_at = due(
            "resolution", conversation.sla_resolution_started_at, _pauses(conversation)
        )
    return _state(conversation) != before


def start(conversation: Conversation, setting: Setting, now: datetime) -> None:
    """A new conversation: first response and resolution start now."""
    conversation.sla_first_response_started_at = conversation.sla_resolution_started_at = now
    conversation.sla_pauses = []
    refresh(conversation, setting)


def overdue(conversation: Conversation, now: datetime) -> list[str]:
    """The running clocks whose due time has passed: breaches to mark."""
    return [
        name
        for name in TARGETS
        if RUNNING[name](conversation)
        and (due := getattr(conversation, f"sla_{name}_due_at")) is not None
        and due <= now
    ]


def mark_breached(conversation: Conversation, name: str) -> datetime:
    """Record that the clock `name` was breached, at its due time (which it keeps from now on)."""
    due: datetime = getattr(conversation, f"sla_{name}_due_at")
    setattr(conversation, f"sla_{name}_breached_at", due)
    return due


def awaits_setting(conversation: Conversation, kind: str) -> bool:
    """Whether a message of `kind` starts a clock (and so needs the inbox's setting): an incoming
    message after the first response while no reply is awaited."""
    return (
        kind == "incoming" and conversation.first_response_at is not None and not _next_awaited(conversation)
    )


def message_posted(conversation: Conversation, kind: str, now: datetime, setting: Setting | None) -> None:
    """An incoming message starts a next-response wait (see `awaits_setting`, which says when
    `setting` is needed); an outgoing one meets the wait. Call after `first_response_at` is set and
    after any breach due by `now` was marked."""
    if kind == "outgoing" and _next_awaited(conversation):
        conversation.sla_next_response_met_at = now
    elif setting is not None and awaits_setting(conversation, kind):
        conversation.sla_next_response_started_at = now
        conversation.sla_next_response_due_at = None
        conversation.sla_next_response_breached_at = conversation.sla_next_response_met_at = None
        refresh(conversation, setting)


def status_changed(conversation: Conversation, previous: str, now: datetime, setting: Setting) -> None:
    """Move the clocks for a status change from `previous` to the conversation's status (set already),
    after any breach due by `now` was marked: pause or resume resolution, stop everything on
    resolving, restart on reopening."""
    status = conversation.status
    stamp = now.isoformat()
    pauses = [list(pause) for pause in conversation.sla_pauses]
    if pauses and pauses[-1][1] is None and status not in PAUSED:
        pauses[-1][1] = stamp  # the pause ends (resumed, or resolved while pending)
    if status == "resolved":
        if conversation.first_response_at is None and conversation.sla_first_response_breached_at is None:
            conversation.sla_first_response_started_at = conversation.sla_first_response_due_at = None
        if _next_awaited(conversation):
            conversation.sla_next_response_started_at = None  # the wait ends unanswered
            if conversation.sla_next_response_breached_at is None:
                conversation.sla_next_response_due_at = None
    elif previous == "resolved":
        conversation.sla_resolution_started_at = now
        conversation.sla_resolution_due_at = conversation.sla_resolution_breached_at = None
        pauses = []
        if conversation.first_response_at is None and conversation.sla_first_response_breached_at is None:
            conversation.sla_first_response_started_at = now
    if status in PAUSED and (not pauses or pauses[-1][1] is not None):
        pauses.append([stamp, None])
    conversation.sla_pauses = pauses
    refresh(conversation, setting)


# --- What the API shows -----------------------------------------------------------------------------------


_CLOCK_COLUMNS = tuple((name, f"sla_{name}_due_at", f"sla_{name}_breached_at") for name in TARGETS)


def view(conversation: Conversation, now: datetime) -> dict[str, dict[str, Any] | None]:
    """Per target: its due time, whether it is breached (and when: its due time), when it was met;
    None for a target the policy does not set (or without a policy). A running clock past its due time
    reads as breached before the job marks it."""
    met = {
        "first_response": conversation.first_response_at,
        "next_response": conversation.sla_next_response_met_at,
        "resolution": conversation.resolved_at,
    }
    targets = conversation.sla_targets or {}
    shown: dict[str, dict[str, Any] | None] = {}
    for name, due_column, breached_column in _CLOCK_COLUMNS:
        if name not in targets:
            shown[name] = None
            continue
        due = getattr(conversation, due_column)
        breached_at = getattr(conversation, breached_column)
        if breached_at is None and due is not None and due <= now and RUNNING[name](conversation):
            breached_at = due
        shown[name] = {
            "due_at": due,
            "breached": breached_at is not None,
            "breached_at": breached_at,
            "met_at": met[name],
        }
    return shown
