"""Webhooks: the organization's events delivered to its endpoints, signed per Standard Webhooks,
retried for about a day, every attempt recorded (docs/webhooks.md)."""
