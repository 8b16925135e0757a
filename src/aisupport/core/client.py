"""Who is at the other end of a request, as far as the network tells."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    ip: str | None
    user_agent: str | None
