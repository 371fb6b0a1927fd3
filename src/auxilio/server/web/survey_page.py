"""The survey page ``/survey/{token}``: public, the signed link is the credential.

================================  ===========  ==============================================
page                              permission   what
================================  ===========  ==============================================
GET  /survey/{token}              (public)     the question, the scale, a comment, Send / No
POST /survey/{token}              (public)     thanks; a page of its own for each refusal
================================  ===========  ==============================================

The form carries the pre-session CSRF token like the login form. No script: plain radio buttons
and two submit buttons, so it works under the CSP and without JavaScript. The page answers
``Referrer-Policy: no-referrer`` so that the link never leaves in a Referer header.

``pending_surveys`` gives the portal the person's surveys still to answer, with their links.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.api.deps import DbSession
from auxilio.server.context import Actor
from auxilio.server.errors import (
    DomainError,
    SurveyCommentInvalid,
    SurveyCommentTooLong,
    SurveyScoreOutOfScale,
)
from auxilio.server.surveys import service as surveys
from auxilio.server.surveys.models import Survey
from auxilio.server.tickets.models import Ticket
from auxilio.server.web.pages import (
    CsrfChecked,
    current_identity,
    register_pages,
    render,
    translator,
)

router = APIRouter(include_in_schema=False)

_HEADERS = {"referrer-policy": "no-referrer", "x-robots-tag": "noindex"}


def _key(request: Request) -> Ed25519PrivateKey:
    key: Ed25519PrivateKey = request.app.state.signing_key
    return key


def _refusal(request: Request, exc: DomainError) -> HTMLResponse:
    """One page per refusal code, in the reader's words."""
    _ = translator(request)
    pages = {
        "survey.link_invalid": (
            _("This survey link does not work"),
            _("The link is incomplete, was changed, or a newer link replaced it. Open the "
              "latest link you received, or find the survey on your ticket in the portal.")),
        "survey.link_expired": (
            _("This survey has expired"),
            _("Surveys can be answered for 14 days. Thank you all the same.")),
        "survey.already_answered": (
            _("Already answered"),
            _("This survey was already answered or declined. Each survey counts once.")),
        "survey.wrong_subject": (
            _("This link is for another session"),
            _("The link belongs to another session or ticket.")),
        "survey.not_found": (
            _("No such survey"),
            _("There is no survey to answer here.")),
    }  # fmt: skip
    title, message = pages.get(exc.code, (_("Something went wrong"), exc.message))
    return render(request, "web/survey/outcome.html", status_code=exc.status, title=title,
                  message=message, code=exc.code, headers=_HEADERS)


async def _about(db: AsyncSession, survey: Survey) -> Ticket | None:
    return await db.get(Ticket, survey.ticket_id)


async def _form(
    request: Request, db: AsyncSession, survey: Survey, token: str, *, status_code: int = 200,
    error: str = "", comment: str = "", score: str = "",
) -> HTMLResponse:
    return render(
        request, "web/survey/answer.html", status_code=status_code, survey=survey, token=token,
        ticket=await _about(db, survey), scores=list(range(survey.scale_min, survey.scale_max + 1)),
        error=error, comment=comment, score=score, max_comment=surveys.MAX_COMMENT,
        headers=_HEADERS,
    )  # fmt: skip


@router.get("/survey/{token}", response_class=HTMLResponse)
async def survey_page(request: Request, token: str, db: DbSession) -> HTMLResponse:
    await current_identity(request, db)
    try:
        survey = await surveys.survey_for_link(db, key=_key(request), token=token)
    except DomainError as exc:
        return _refusal(request, exc)
    return await _form(request, db, survey, token)


@router.post("/survey/{token}", response_class=HTMLResponse)
async def answer(
    request: Request, token: str, db: DbSession, _csrf: CsrfChecked,
    action: Annotated[str, Form(max_length=16)] = "answer",
    score: Annotated[str, Form(max_length=16)] = "",
    comment: Annotated[str, Form(max_length=20_000)] = "",
) -> HTMLResponse:  # fmt: skip
    _ = translator(request)
    key = _key(request)
    try:
        if action == "decline":
            await surveys.decline_by_link(db, key=key, token=token)
            return render(request, "web/survey/outcome.html", title=_("No survey, then"),
                          message=_("You declined this survey. We will not ask again about "
                                    "it."), code="survey.declined", headers=_HEADERS)
        survey = await surveys.survey_for_link(db, key=key, token=token)
        if not score.strip().removeprefix("-").isdecimal():  # exactly what int() reads
            return await _form(request, db, survey, token, status_code=422, comment=comment,
                               error=_("Choose a score first."))
        value = int(score)
        try:
            await surveys.answer_by_link(db, key=key, token=token, score=value, comment=comment)
        except SurveyScoreOutOfScale:
            return await _form(request, db, survey, token, status_code=422, comment=comment,
                               error=_("Choose one of the scores shown."))
        except SurveyCommentTooLong:
            return await _form(request, db, survey, token, status_code=422, comment=comment,
                               score=score, error=_("The comment can hold at most %(n)s "
                                                    "characters.", n=surveys.MAX_COMMENT))
        except SurveyCommentInvalid:
            return await _form(request, db, survey, token, status_code=422, comment="",
                               score=score, error=_("The comment holds characters that cannot "
                                                    "be kept (control characters). Please "
                                                    "type it again."))
    except DomainError as exc:
        return _refusal(request, exc)
    return render(request, "web/survey/outcome.html", title=_("Thank you"),
                  message=_("Your answer was recorded. It helps us improve our support."),
                  code="survey.answered", headers=_HEADERS)


# ---- in the portal -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingSurvey:
    ticket_id: uuid.UUID
    link: str
    expires_at: datetime
    about_session: bool


async def pending_surveys(
    request: Request, db: AsyncSession, actor: Actor, *, ticket_id: uuid.UUID | None = None
) -> list[PendingSurvey]:
    """The person's surveys still to answer (their own only), each with its page's link."""
    rows = await surveys.list_mine(db, actor=actor, pending_only=True, ticket_id=ticket_id,
                                   limit=20)
    key = _key(request)
    return [PendingSurvey(ticket_id=row.ticket_id, expires_at=row.expires_at,
                          link=f"/survey/{surveys.link_token(key, row)}",
                          about_session=row.support_session_id is not None)
            for row in rows]  # fmt: skip


register_pages(router)
