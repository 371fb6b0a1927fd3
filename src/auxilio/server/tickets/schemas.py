"""Request and response bodies of the ticket routes.

Inputs refuse unknown fields, and numbers and booleans must be JSON numbers and booleans:
"30" is not a number of minutes and "yes" is not ``true``. (Strict mode for the whole model
would also refuse enum and UUID strings, which is all JSON can carry.)
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from auxilio.server.tickets.states import TicketStatus
from auxilio.server.validation import LongText, Name


class TicketCategory(StrEnum):
    """The kind of problem, which is also the skill a technician needs to take it."""

    HARDWARE = "hardware"
    SOFTWARE = "software"
    NETWORK = "network"
    ACCOUNT = "account"
    OTHER = "other"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


CommentText = Annotated[LongText, AfterValidator(_not_blank)]


class StrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketCreateIn(StrictIn):
    title: Name
    description: LongText = ""
    category: TicketCategory
    priority: TicketPriority = TicketPriority.NORMAL
    device_id: uuid.UUID | None = None
    # Staff opening a ticket on behalf of an end user; absent means "for myself".
    requester_id: uuid.UUID | None = None


class TicketUpdateIn(StrictIn):
    title: Name | None = None
    category: TicketCategory | None = None
    priority: TicketPriority | None = None
    device_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _something_non_null(self) -> TicketUpdateIn:
        if not self.model_fields_set:
            raise ValueError("give at least one of title, category, priority, device_id")
        nulls = sorted(k for k in self.model_fields_set if getattr(self, k) is None)
        if nulls:
            raise ValueError(f"cannot be null: {', '.join(nulls)}")
        return self


class TransitionIn(StrictIn):
    to: TicketStatus


class AssignIn(StrictIn):
    # null takes the ticket off its assignee.
    assignee_id: uuid.UUID | None


class CommentIn(StrictIn):
    body: CommentText
    internal: StrictBool = False


class TimeEntryIn(StrictIn):
    # One entry covers at most a working day; longer work is logged as several entries.
    minutes: StrictInt = Field(ge=1, le=24 * 60)
    note: LongText = ""


class TicketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    title: str
    description: str
    category: TicketCategory
    priority: TicketPriority
    status: TicketStatus
    channel: str
    requester_id: uuid.UUID
    created_by_id: uuid.UUID
    assignee_id: uuid.UUID | None
    device_id: uuid.UUID | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    first_response_at: AwareDatetime | None
    resolved_at: AwareDatetime | None
    closed_at: AwareDatetime | None
    reopen_count: int
    contact_count: int
    time_spent_seconds: int
    # Counted for the viewer: an end user's count leaves internal comments out.
    comment_count: int = 0


class TicketPage(BaseModel):
    items: list[TicketOut]
    total: int
    limit: int
    offset: int


class CommentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: uuid.UUID
    author_id: uuid.UUID
    body: str
    internal: bool
    created_at: AwareDatetime


class TimeEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: uuid.UUID
    technician_id: uuid.UUID
    seconds: int
    note: str
    created_at: AwareDatetime
    ticket_time_spent_seconds: int = 0
