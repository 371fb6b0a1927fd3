"""The supervisor page's Declare and Lift forms (``web/supervisor/_emergency.html``): the same
service as ``POST /api/v1/emergency`` and ``/lift``, with the outcome flashed on the page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession
from auxilio.server.context import Actor
from auxilio.server.emergency import service
from auxilio.server.emergency.announce import announce_ended
from auxilio.server.errors import DomainError, PolicyDenied
from auxilio.server.web.pages import (
    CsrfChecked,
    flash,
    language,
    register_pages,
    translator,
    web_require,
)
from auxilio.server.web.policy_messages import reason_text

router = APIRouter(prefix="/supervisor/emergency", include_in_schema=False)

Declare = Annotated[Actor, web_require(Permission.EMERGENCY_DECLARE)]
# The form's own bound is the service's; a longer body is cut here and refused there.
ReasonField = Annotated[str, Form(max_length=8000)]


def _back() -> RedirectResponse:
    return RedirectResponse("/supervisor", status_code=303)


def _error_text(request: Request, exc: DomainError) -> str:
    """The service's refusal in the reader's language, by its code."""
    _ = translator(request)
    texts = {
        "emergency.reason_required": _("Say why: a reason is required."),
        "emergency.reason_too_long": _("The reason is too long (at most %(n)s characters).",
                                       n=service.REASON_MAX),
        "emergency.reason_invalid": _("The reason holds a control or bidirectional override "
                                      "character."),
        "emergency.already_active": _("The organisation already has an active emergency."),
        "emergency.not_active": _("The organisation has no active emergency to lift."),
    }
    return texts.get(exc.code, exc.message)


def _worded(request: Request, exc: PolicyDenied) -> str:
    """The policy's reason in the reader's language (its code), else the engine's English."""
    code, params = exc.details.get("reason_code"), exc.details.get("params") or {}
    return (reason_text(language(request), code, params) if code else None) or exc.message


@router.post("", response_model=None)
async def declare(
    request: Request, db: DbSession, actor: Declare, _csrf: CsrfChecked,
    reason: ReasonField = "", confirm: Annotated[str, Form(max_length=8)] = "",
) -> RedirectResponse:
    _ = translator(request)
    back = _back()
    if confirm != "yes":
        flash(back, request, _("Not declared: tick the confirmation first."), "error")
        return back
    try:
        declared = await service.declare(db, actor=actor, reason=reason)
    except PolicyDenied as exc:
        await db.rollback()
        await service.record_refusal(db, actor=actor)
        flash(back, request, _("The policy does not let you declare an emergency (%(rule)s: "
                               "%(reason)s).", rule=exc.details.get("rule", ""),
                               reason=_worded(request, exc)), "error")  # fmt: skip
        return back
    except DomainError as exc:
        await db.rollback()
        flash(back, request,
              _("Not declared: %(reason)s", reason=_error_text(request, exc)), "error")
        return back
    await db.commit()
    await announce_ended(request.app.state.support_sessions, declared.ended)
    flash(back, request, _("Emergency declared. Support sessions ended: %(count)s.",
                           count=len(declared.ended)), "info")  # fmt: skip
    return back


@router.post("/lift", response_model=None)
async def lift(
    request: Request, db: DbSession, actor: Declare, _csrf: CsrfChecked,
    reason: ReasonField = "",
) -> RedirectResponse:
    _ = translator(request)
    back = _back()
    try:
        await service.lift(db, actor=actor, reason=reason)
    except PolicyDenied as exc:
        await db.rollback()
        await service.record_refusal(db, actor=actor)
        flash(back, request, _("The policy does not let you lift the emergency (%(rule)s: "
                               "%(reason)s).", rule=exc.details.get("rule", ""),
                               reason=_worded(request, exc)), "error")  # fmt: skip
        return back
    except DomainError as exc:
        await db.rollback()
        flash(back, request,
              _("Not lifted: %(reason)s", reason=_error_text(request, exc)), "error")
        return back
    flash(back, request, _("The emergency is lifted."), "info")
    return back


register_pages(router)
