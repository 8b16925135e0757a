"""The errors of webhooks, and the answers their routes document."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

TARGET_REFUSED = ProblemAnswer(422, "the URL is not one webhooks may reach (`webhook_target_refused`)")
UNKNOWN_EVENT_TYPE = ProblemAnswer(422, "an event type not in the catalogue (`unknown_event_type`)")


def endpoint_not_found() -> AppError:
    return AppError(404, "webhook_endpoint_not_found", "No such webhook endpoint.")


def delivery_not_found() -> AppError:
    return AppError(404, "webhook_delivery_not_found", "No such webhook delivery.")


def target_refused(reason: str) -> AppError:
    return AppError(422, "webhook_target_refused", f"Webhooks may not be sent there: {reason}.")


def unknown_event_type(name: str) -> AppError:
    return AppError(422, "unknown_event_type", f"{name!r} is not an event type (docs/events.md).")
