"""Request and response bodies of webhook endpoints and deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from aisupport.core.schemas import RequestModel

EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(max_length=50, description="Event types (docs/events.md); empty: every type."),
]
Url = Annotated[str, Field(min_length=8, max_length=2048, description="https URL the events are POSTed to.")]


class EndpointCreate(RequestModel):
    url: Url
    event_types: EventTypes = Field(default_factory=list)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class EndpointUpdate(RequestModel):
    url: Url = Field(default=None)  # type: ignore[assignment]
    event_types: EventTypes = Field(default=None)  # type: ignore[arg-type]
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = Field(default=None)  # type: ignore[assignment]


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why the service disabled it (`gone`, `failing`).")
    consecutive_failures: int
    previous_secret_expires_at: datetime | None = Field(
        description="During a rotation: until when the previous secret signs too."
    )
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret (`whsec_...`): shown now only.")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    event_sequence: int
    status: str = Field(description="`pending`, `succeeded` or `failed`.")
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None = Field(description="The first 1,024 bytes of the answer.")
