"""The survey invite (R13): after the end-of-session report, the server may send the person
the link to their satisfaction survey, signed with its key (kind ``auxilio.survey_invite.v1``)
so that nothing on the way can swap the link for another site's. The agent shows it only when
the pinned server key signed it, for this session (docs/surveys.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from auxilio.protocol.types import Identifier, UtcDatetime, WireModel

SURVEY_INVITE_KIND = "auxilio.survey_invite.v1"

# The link's token is at most 1024 characters; the server's public URL goes before it.
SurveyUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048,
                                             pattern=r"^(https?://[^\s]+)?/survey/[A-Za-z0-9_.-]+$")]


class SurveyInvite(WireModel):
    support_session_id: Identifier
    survey_id: Identifier
    url: SurveyUrl
    question: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    scale_min: int = Field(ge=0, le=100)
    scale_max: int = Field(ge=1, le=100)
    expires_at: UtcDatetime
