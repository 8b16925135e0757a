"""Request and response bodies of the conversations domain, by resource: SLA policies, teams,
availability, inboxes (with their business hours and allowed origins)."""

from __future__ import annotations

import itertools
import re
import uuid
import zoneinfo
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from aisupport.core.schemas import RequestModel

Priority = Literal["none", "low", "normal", "high", "urgent"]
Availability = Literal["online", "away", "offline"]
InboxKind = Literal["api", "widget"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
Name = Annotated[str, Field(min_length=1, max_length=100)]

# --- SLA policies -------------------------------------------------------------------------------------

MAX_TARGET_MINUTES = 366 * 24 * 60  # a year: anything longer is not a service level
Minutes = Annotated[int, Field(ge=1, le=MAX_TARGET_MINUTES)]


class SlaTargets(RequestModel):
    """Minutes allowed for each step at one priority; a missing target is not measured."""

    first_response: Minutes | None = None
    next_response: Minutes | None = None
    resolution: Minutes | None = None


class SlaPolicyCreate(RequestModel):
    name: Name
    targets: dict[Priority, SlaTargets] = Field(
        default_factory=dict, description="Targets per priority (`none`, `low`, `normal`, `high`, `urgent`)."
    )


class SlaPolicyUpdate(RequestModel):
    name: Name | None = None
    targets: dict[Priority, SlaTargets] | None = Field(default=None, description="Replaces all targets.")


class SlaTargetsOut(BaseModel):
    first_response: int | None = None
    next_response: int | None = None
    resolution: int | None = None


class SlaPolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    targets: dict[Priority, SlaTargetsOut]
    created_at: datetime


# --- Teams ----------------------------------------------------------------------------------------------


class TeamCreate(RequestModel):
    name: Name
    description: str | None = Field(default=None, max_length=500)


class TeamUpdate(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=500)


class TeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime


class TeamMemberAdd(RequestModel):
    user_id: uuid.UUID


class TeamMemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str | None
    added_at: datetime


# --- Availability -------------------------------------------------------------------------------------


class AvailabilityUpdate(RequestModel):
    status: Availability


class AvailabilityOut(BaseModel):
    user_id: uuid.UUID
    status: Availability
    updated_at: datetime | None = Field(description="null: never set (reads as `offline`).")


# --- Inboxes: business hours ----------------------------------------------------------------------------

MAX_INTERVALS_PER_DAY = 8
MAX_HOLIDAYS = 366
START = r"^(?:[01]\d|2[0-3]):[0-5]\d$"
END = r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _known_zone(name: str) -> str:
    # The list, not ZoneInfo(name): that would also accept file paths under the zone directory.
    if name not in _time_zones():
        raise ValueError("not an IANA time zone name (such as Europe/Paris)")
    return name


def _calendar_date(text: str) -> str:
    if not DATE.match(text):
        raise ValueError("not a date written YYYY-MM-DD")
    return date.fromisoformat(text).isoformat()  # ValueError for 2026-02-30


class Interval(RequestModel):
    """Open from `start` to `end` (local time, `end` after `start`; `24:00` is midnight at the end)."""

    start: str = Field(pattern=START, examples=["09:00"])
    end: str = Field(pattern=END, examples=["17:30"])

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _no_overlap(intervals: list[Interval]) -> list[Interval]:
    ordered = sorted(intervals, key=lambda interval: interval.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"intervals {before.start}-{before.end} and {after.start}-{after.end} overlap")
    return ordered


DayHours = Annotated[list[Interval], Field(max_length=MAX_INTERVALS_PER_DAY), AfterValidator(_no_overlap)]
TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=64, examples=["Europe/Paris"]), AfterValidator(_known_zone)
]
CalendarDate = Annotated[str, Field(max_length=10, examples=["2026-12-25"]), AfterValidator(_calendar_date)]


def _distinct_dates(dates: list[str]) -> list[str]:
    if len(set(dates)) != len(dates):
        raise ValueError("a holiday is listed twice")
    return sorted(dates)


class BusinessHours(RequestModel):
    """When an inbox is staffed: weekly hours in an IANA time zone, closed on the holidays. A weekday
    not listed is closed all day."""

    time_zone: TimeZoneName
    weekly: dict[Weekday, DayHours] = Field(default_factory=dict)
    holidays: Annotated[
        list[CalendarDate], Field(max_length=MAX_HOLIDAYS), AfterValidator(_distinct_dates)
    ] = Field(default_factory=list, description="Dates (YYYY-MM-DD) closed all day.")


class IntervalOut(BaseModel):
    start: str
    end: str


class BusinessHoursOut(BaseModel):
    time_zone: str
    weekly: dict[Weekday, list[IntervalOut]]
    holidays: list[str]


# --- Inboxes: allowed origins -----------------------------------------------------------------------------

MAX_ORIGINS = 20
HOST = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def _origin(text: str) -> str:
    """`scheme://host[:port]` in the form browsers send in `Origin` (lower case, no default port)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not an origin such as https://example.com") from None
    host = (parts.hostname or "").lower()
    if (
        parts.scheme not in ("http", "https")
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
        or not HOST.match(host)
    ):
        raise ValueError("not an origin such as https://example.com (scheme and host, no path)")
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _distinct_origins(origins: list[str]) -> list[str]:
    return list(dict.fromkeys(origins))


Origin = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_origin)]
Origins = Annotated[list[Origin], Field(max_length=MAX_ORIGINS), AfterValidator(_distinct_origins)]


# --- Inboxes ----------------------------------------------------------------------------------------------

MAX_AUTO_ASSIGNMENT_LIMIT = 1000
AutoAssignmentLimit = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_AUTO_ASSIGNMENT_LIMIT,
        description="At most this many open conversations of the inbox per member from auto-assignment "
        f"(1 to {MAX_AUTO_ASSIGNMENT_LIMIT}); null: no cap.",
    ),
]


AiMode = Literal["off", "draft", "auto"]
AI_MODE = (
    "The AI on each customer message: `off`; `draft` (a draft reply prepared for the agents); `auto` (it "
    "answers when confident, with a valid citation, else hands off to a person; docs/ai.md)."
)
AiThreshold = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        allow_inf_nan=False,
        strict=True,
        description="`auto`: the least confidence (0 to 1) at which the AI answers; below it, it hands off.",
    ),
]
AiMaxReplies = Annotated[
    StrictInt,
    Field(ge=1, le=100, description="`auto`: after this many AI answers in a conversation, it hands off."),
]


class InboxCreate(RequestModel):
    name: Name
    kind: InboxKind = "api"
    team_id: uuid.UUID | None = None
    sla_policy_id: uuid.UUID | None = None
    auto_assignment: StrictBool = False
    auto_assignment_limit: AutoAssignmentLimit | None = None
    business_hours: BusinessHours | None = Field(default=None, description="null: always open.")
    allowed_origins: Origins = Field(
        default_factory=list,
        description=f"Widget inboxes only: the origins that may embed the widget (at most {MAX_ORIGINS}).",
    )
    ai_mode: AiMode = Field(default="off", description=AI_MODE)
    ai_threshold: AiThreshold = 0.7
    ai_max_replies: AiMaxReplies = 3

    @model_validator(mode="after")
    def _origins_for_widgets(self) -> InboxCreate:
        if self.kind != "widget" and self.allowed_origins:
            raise ValueError("allowed_origins is for widget inboxes only")
        return self


class InboxUpdate(RequestModel):
    """The fields to change (the kind is fixed at creation); `team_id`, `sla_policy_id`,
    `auto_assignment_limit` and `business_hours` may be set to null, the others may be left out but not
    be null."""

    name: Name = Field(default=None)  # type: ignore[assignment]
    team_id: uuid.UUID | None = None
    sla_policy_id: uuid.UUID | None = None
    auto_assignment: StrictBool = Field(default=None)  # type: ignore[assignment]
    auto_assignment_limit: AutoAssignmentLimit | None = None
    business_hours: BusinessHours | None = None
    allowed_origins: Origins = Field(default=None)  # type: ignore[arg-type]
    ai_mode: AiMode = Field(default=None, description=AI_MODE)  # type: ignore[arg-type]
    ai_threshold: AiThreshold = Field(default=None)  # type: ignore[assignment]
    ai_max_replies: AiMaxReplies = Field(default=None)  # type: ignore[assignment]


class InboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: InboxKind
    team_id: uuid.UUID | None
    sla_policy_id: uuid.UUID | None
    auto_assignment: bool
    auto_assignment_limit: int | None
    business_hours: BusinessHoursOut | None
    allowed_origins: list[str]
    ai_mode: AiMode
    ai_threshold: float
    ai_max_replies: int
    has_identity_secret: bool
    identity_secret_rotated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class InboxWithSecret(InboxOut):
    identity_secret: str | None = Field(
        description="Widget inboxes: the identity-verification secret, shown in this answer only "
        "(stored encrypted). Sign a visitor's identity with it (HMAC-SHA256) on your server."
    )
