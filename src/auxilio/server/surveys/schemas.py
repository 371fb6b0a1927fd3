"""Request and response bodies of the survey routes.

A score is any 32-bit integer here: whether it lies on the survey's scale is the service's
check (``survey.score_out_of_scale``), and so is the comment's 2000-character limit
(``survey.comment_too_long``), so that both have their own code wherever the answer comes from.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from annotated_types import Interval
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from auxilio.server.surveys.tokens import MAX_TOKEN_LENGTH
from auxilio.server.validation import INT32_MAX, LongText

Score = Annotated[StrictInt, Interval(ge=-INT32_MAX, le=INT32_MAX)]
Token = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerIn(_In):
    score: Score
    comment: LongText = ""


class TokenIn(_In):
    token: Token
    # The session or ticket the answer is given for ("session:<id>", "ticket:<id>"): when sent,
    # a link of another subject is refused with survey.wrong_subject.
    subject: Annotated[str, Field(max_length=80)] | None = None


class TokenAnswerIn(TokenIn):
    score: Score
    comment: LongText = ""


class SurveyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subject: str
    ticket_id: uuid.UUID
    support_session_id: uuid.UUID | None
    state: str
    scale_min: int
    scale_max: int
    sent_at: AwareDatetime | None
    expires_at: AwareDatetime
    answered_at: AwareDatetime | None
    score: int | None
    comment: str
    answered_via: str | None
    # The page that answers it (``/survey/<token>``), while it can still be answered.
    link: str | None = None


class LinkOut(BaseModel):
    link: str
    token: str
