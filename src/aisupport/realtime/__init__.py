"""Realtime for members: the organization's events over Server-Sent Events (docs/realtime.md)."""
