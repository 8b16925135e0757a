from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, JsonValue

from aisupport.core.json_limits import JsonObjectBounds
from aisupport.core.schemas import RequestModel, Timestamp

# Custom attributes are the organization's data about a person (plan, company, signup source): a
# flat-ish record, larger than settings allow per key but small per contact (decision 0033).
ATTRIBUTE_BOUNDS = JsonObjectBounds(max_depth=4, max_items=200, max_bytes=16 * 1024)
PHONE_PATTERN = r"^\+?[0-9][0-9 ().\-]{1,38}$"
NAME_MAX = 200
EXTERNAL_ID_MAX = 255

CustomAttributes = Annotated[dict[str, JsonValue], ATTRIBUTE_BOUNDS]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX)]
Phone = Annotated[str, Field(pattern=PHONE_PATTERN, max_length=40, description="Digits, spaces, ( ) . -")]
ExternalId = Annotated[
    str,
    Field(min_length=1, max_length=EXTERNAL_ID_MAX, description="Your own id for this person; unique."),
]


class ContactCreate(RequestModel):
    name: Name | None = None
    email: EmailStr | None = Field(default=None, description="Unique in the organization, any case.")
    phone: Phone | None = None
    external_id: ExternalId | None = None
    custom_attributes: CustomAttributes = Field(
        default_factory=dict, description=f"Any JSON object. {ATTRIBUTE_BOUNDS.describe()}"
    )
    last_seen_at: Timestamp | None = None


class ContactUpdate(RequestModel):
    """Only the fields sent change; `null` clears a field (custom_attributes: send `{}`)."""

    name: Name | None = None
    email: EmailStr | None = Field(default=None, description="Unique in the organization, any case.")
    phone: Phone | None = None
    external_id: ExternalId | None = None
    custom_attributes: CustomAttributes = Field(
        default_factory=dict,
        description=f"Replaces the whole object. {ATTRIBUTE_BOUNDS.describe()}",
    )
    last_seen_at: Timestamp | None = None


class ContactMerge(RequestModel):
    merged_contact_id: uuid.UUID = Field(
        description="The contact merged into this one and then deleted; this one is kept."
    )


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None
    external_id: str | None
    custom_attributes: dict[str, Any]
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = Field(description="Set once the contact's personal data was erased.")
