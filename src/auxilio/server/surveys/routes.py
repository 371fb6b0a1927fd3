"""Survey routes (docs/surveys.md).

==========================================  ===============  ===================================
route                                       permission       who
==========================================  ===============  ===================================
GET    /surveys/mine                        user:read_self   the person: the surveys sent to them
POST   /surveys/mine/{id}/answer            user:read_self   the person, without the link;
POST   /surveys/mine/{id}/decline           user:read_self   staff get survey.not_the_person,
POST   /surveys/mine/{id}/link              user:read_self   anyone else survey.not_found
POST   /surveys/answer, /surveys/decline    (public)         whoever holds the signed link
==========================================  ===============  ===================================
"""

from __future__ import annotations

import uuid
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Query, Request

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.settings import Settings
from auxilio.server.surveys import schemas as s
from auxilio.server.surveys import service
from auxilio.server.surveys.models import Survey

router = APIRouter(prefix="/surveys", tags=["surveys"])

Person = Annotated[Identity, require(Permission.USER_READ_SELF)]


def _key(request: Request) -> Ed25519PrivateKey:
    key: Ed25519PrivateKey = request.app.state.signing_key
    return key


def link_url(settings: Settings, token: str) -> str:
    """The survey page's address: absolute when the server knows its public URL."""
    return f"{settings.public_url.rstrip('/')}/survey/{token}"


def _out(request: Request, survey: Survey) -> s.SurveyOut:
    out = s.SurveyOut.model_validate(survey)
    if survey.state == service.SurveyState.SENT:
        out.link = link_url(request.app.state.settings, service.link_token(_key(request), survey))
    return out


@router.get("/mine", response_model=list[s.SurveyOut])
async def my_surveys(
    caller: Person, db: DbSession, request: Request,
    pending: Annotated[bool, Query(description="only those still to answer")] = False,
    ticket_id: uuid.UUID | None = None,
) -> list[s.SurveyOut]:  # fmt: skip
    rows = await service.list_mine(db, actor=caller.actor, pending_only=pending,
                                   ticket_id=ticket_id)
    return [_out(request, row) for row in rows]


@router.post("/mine/{survey_id}/answer", response_model=s.SurveyOut)
async def answer_mine(
    survey_id: uuid.UUID, body: s.AnswerIn, caller: Person, db: DbSession, request: Request
) -> s.SurveyOut:
    row = await service.answer_mine(db, survey_id=survey_id, score=body.score,
                                    comment=body.comment, actor=caller.actor)
    return _out(request, row)


@router.post("/mine/{survey_id}/decline", response_model=s.SurveyOut)
async def decline_mine(
    survey_id: uuid.UUID, caller: Person, db: DbSession, request: Request
) -> s.SurveyOut:
    row = await service.decline_mine(db, survey_id=survey_id, actor=caller.actor)
    return _out(request, row)


@router.post("/mine/{survey_id}/link", response_model=s.LinkOut)
async def renew_link(
    survey_id: uuid.UUID, caller: Person, db: DbSession, request: Request
) -> s.LinkOut:
    token = await service.renew_link(db, survey_id=survey_id, actor=caller.actor,
                                     key=_key(request))
    return s.LinkOut(link=link_url(request.app.state.settings, token), token=token)


@router.post("/answer", response_model=s.SurveyOut)
async def answer_by_link(body: s.TokenAnswerIn, db: DbSession, request: Request) -> s.SurveyOut:
    row = await service.answer_by_link(db, key=_key(request), token=body.token, score=body.score,
                                       comment=body.comment, expected_subject=body.subject)
    return _out(request, row)


@router.post("/decline", response_model=s.SurveyOut)
async def decline_by_link(body: s.TokenIn, db: DbSession, request: Request) -> s.SurveyOut:
    row = await service.decline_by_link(db, key=_key(request), token=body.token,
                                        expected_subject=body.subject)
    return _out(request, row)
