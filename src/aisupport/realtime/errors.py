"""The errors of realtime streams, and the answers their route documents."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

BAD_POSITION = ProblemAnswer(400, "`Last-Event-ID` is not an event number (`invalid_last_event_id`)")


def bad_position() -> AppError:
    return AppError(400, "invalid_last_event_id", "Last-Event-ID must be an event's `sequence` (a number).")
