"""Admin pages: users (with their role, skills, working hours and trainings), roles, skills,
the admin's own two-factor enrolment and API tokens.

Every change goes through the identity services the JSON API uses, so the same validation and
the same audit events apply; a refused change shows the service's message next to the form
instead of a JSON error. The policy editor lives in ``admin_policy``.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auxilio.policy.roles import ROLE_PERMISSIONS, STAFF_ROLES, Permission, Role
from auxilio.server.api.deps import DbSession
from auxilio.server.context import Actor
from auxilio.server.errors import DomainError, Forbidden, ValidationFailed
from auxilio.server.identity import auth, service
from auxilio.server.identity.models import Organisation, User
from auxilio.server.web import admin_policy
from auxilio.server.web.pages import N_, CsrfChecked, register_pages, render, web_require

router = APIRouter(prefix="/admin", include_in_schema=False)

ManageUsers = Annotated[Actor, web_require(Permission.USER_MANAGE)]
DAY_NAMES = {
    "mon": N_("Monday"),
    "tue": N_("Tuesday"),
    "wed": N_("Wednesday"),
    "thu": N_("Thursday"),
    "fri": N_("Friday"),
    "sat": N_("Saturday"),
    "sun": N_("Sunday"),
}
ROLE_NAMES = {
    Role.END_USER: N_("end user"),
    Role.TECHNICIAN: N_("technician"),
    Role.SENIOR_TECHNICIAN: N_("senior technician"),
    Role.SUPERVISOR: N_("supervisor"),
    Role.ADMIN: N_("administrator"),
    Role.AUDITOR: N_("auditor"),
}
TOKEN_DAYS = (7, 30, 90, 365)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _hours_from_form(form: Any) -> dict[str, list[str]]:
    """One text field per day ("09:00-13:00, 14:00-18:00"); an empty field is a day off."""
    return {day: _split(str(form.get(f"hours_{day}", ""))) for day in DAY_NAMES}


def _day_start(value: str, field: str) -> datetime | None:
    """A date field as the start of that day in UTC (trainings are recorded by the day)."""
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed("That is not a date.", field=field) from exc
    return datetime.combine(day, time(0), tzinfo=UTC)


async def _organisation(db: DbSession, actor: Actor) -> Organisation:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    org = await service.get_organisation(db, organisation_id=actor.organisation_id)
    assert org is not None  # noqa: S101 -- the actor's own organisation exists
    return org


async def _me(db: DbSession, actor: Actor) -> User:
    assert actor.organisation_id is not None and actor.id is not None  # noqa: S101 -- a person
    return await service.get_user_or_raise(
        db, organisation_id=actor.organisation_id, user_id=actor.id
    )


# ---- users -----------------------------------------------------------------------------------


@router.get("")
async def admin_home() -> RedirectResponse:
    return _see_other("/admin/users")


async def _users_page(
    request: Request,
    db: DbSession,
    actor: Actor,
    *,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    users = await service.list_users(db, organisation_id=actor.organisation_id)
    response = render(
        request, "web/admin/users.html", users=users, roles=ROLE_NAMES, days=DAY_NAMES,
        error=error, form=form or {}, hours=_hours_from_form(form or {}), Role=Role,
    )  # fmt: skip
    response.status_code = status
    return response


@router.get("/users")
async def users(request: Request, db: DbSession, actor: ManageUsers) -> HTMLResponse:
    return await _users_page(request, db, actor)


@router.post("/users", response_model=None)
async def create_user(
    request: Request, db: DbSession, actor: ManageUsers, _csrf: CsrfChecked
) -> Response:
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if k != "password"}
    try:
        user = await service.create_user(
            db,
            organisation=await _organisation(db, actor),
            email=fields.get("email", ""),
            display_name=fields.get("display_name", ""),
            role=Role(fields.get("role", Role.END_USER)),
            password=str(form.get("password", "")),
            timezone=fields.get("timezone", "UTC") or "UTC",
            skills=_split(fields.get("skills", "")),
            languages=_split(fields.get("languages", "")),
            working_hours=_hours_from_form(form),
            actor=actor,
        )
    except (DomainError, ValueError) as exc:
        # Nothing was added: create_user checks every value before it adds the row.
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        return await _users_page(request, db, actor, error=message, form=fields, status=422)
    return _see_other(f"/admin/users/{user.id}?created=1")


async def _user_page(
    request: Request,
    db: DbSession,
    actor: Actor,
    user: User,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    trainings = await service.list_trainings(db, user=user)
    response = render(
        request, "web/admin/user.html", user=user, roles=ROLE_NAMES, days=DAY_NAMES,
        trainings=trainings, error=error, is_staff=Role(user.role) in STAFF_ROLES,
        is_self=user.id == actor.id, created=request.query_params.get("created") == "1",
        saved=request.query_params.get("saved") == "1",
    )  # fmt: skip
    response.status_code = status
    return response


async def _user(db: DbSession, actor: Actor, user_id: uuid.UUID) -> User:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    return await service.get_user_or_raise(
        db, organisation_id=actor.organisation_id, user_id=user_id
    )


@router.get("/users/{user_id}")
async def user_detail(
    user_id: uuid.UUID, request: Request, db: DbSession, actor: ManageUsers
) -> HTMLResponse:
    return await _user_page(request, db, actor, await _user(db, actor, user_id))


def _check(changes: dict[str, Any]) -> None:
    """Every value checked before ``update_user`` sets any: it sets them one by one, and a
    refusal halfway would leave the earlier ones on the row (a rollback would expire the
    objects the error page still shows)."""
    if "timezone" in changes:
        service.check_timezone(changes["timezone"])
    if "working_hours" in changes:
        service.check_working_hours(changes["working_hours"])
    if "role" in changes:
        Role(changes["role"])


async def _change(
    request: Request, db: DbSession, actor: Actor, user_id: uuid.UUID, changes: dict[str, Any]
) -> Response:
    user = await _user(db, actor, user_id)
    try:
        if user.id == actor.id and ("role" in changes or changes.get("is_active") is False):
            # The API's rule: nobody removes their own access by mistake.
            raise Forbidden("You cannot change your own role or deactivate yourself.")
        _check(changes)
        await service.update_user(db, user=user, actor=actor, changes=changes)
    except (DomainError, ValueError) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        return await _user_page(request, db, actor, user, error=message, status=422)
    return _see_other(f"/admin/users/{user_id}?saved=1")


@router.post("/users/{user_id}/account", response_model=None)
async def update_account(
    user_id: uuid.UUID,
    request: Request,
    db: DbSession,
    actor: ManageUsers,
    _csrf: CsrfChecked,
    display_name: Annotated[str, Form()],
    role: Annotated[str, Form()],
) -> Response:
    user = await _user(db, actor, user_id)
    changes: dict[str, Any] = {}
    if display_name.strip() and display_name.strip() != user.display_name:
        changes["display_name"] = display_name.strip()
    if role != user.role:
        changes["role"] = role
    if not changes:
        return _see_other(f"/admin/users/{user_id}")
    return await _change(request, db, actor, user_id, changes)


@router.post("/users/{user_id}/profile", response_model=None)
async def update_profile(
    user_id: uuid.UUID, request: Request, db: DbSession, actor: ManageUsers, _csrf: CsrfChecked
) -> Response:
    form = await request.form()
    changes = {
        "timezone": str(form.get("timezone", "UTC")).strip() or "UTC",
        "skills": _split(str(form.get("skills", ""))),
        "languages": _split(str(form.get("languages", ""))),
        "working_hours": {d: w for d, w in _hours_from_form(form).items() if w},
    }
    return await _change(request, db, actor, user_id, changes)


@router.post("/users/{user_id}/active", response_model=None)
async def set_active(
    user_id: uuid.UUID,
    request: Request,
    db: DbSession,
    actor: ManageUsers,
    _csrf: CsrfChecked,
    active: Annotated[str, Form()],
) -> Response:
    return await _change(request, db, actor, user_id, {"is_active": active == "1"})


@router.post("/users/{user_id}/trainings", response_model=None)
async def record_training(
    user_id: uuid.UUID,
    request: Request,
    db: DbSession,
    actor: ManageUsers,
    _csrf: CsrfChecked,
    training_id: Annotated[str, Form()],
    title: Annotated[str, Form()] = "",
    completed_on: Annotated[str, Form()] = "",
    expires_on: Annotated[str, Form()] = "",
) -> Response:
    user = await _user(db, actor, user_id)
    try:
        completed = _day_start(completed_on, "completed_at")
        if not training_id.strip():
            raise ValidationFailed("Name the training.", field="training_id")
        await service.record_training(
            db, user=user, training_id=training_id.strip(),
            title=title.strip() or training_id.strip(),
            completed_at=completed or datetime.now(UTC),
            expires_at=_day_start(expires_on, "expires_at"), actor=actor,
        )  # fmt: skip
    except DomainError as exc:
        # Nothing was added: record_training checks the dates before it adds the row.
        return await _user_page(request, db, actor, user, error=exc.message, status=422)
    return _see_other(f"/admin/users/{user_id}?saved=1")


@router.post("/users/{user_id}/trainings/{record_id}/remove")
async def remove_training(
    user_id: uuid.UUID,
    record_id: uuid.UUID,
    db: DbSession,
    actor: ManageUsers,
    _csrf: CsrfChecked,
) -> RedirectResponse:
    user = await _user(db, actor, user_id)
    await service.remove_training(db, user=user, training_record_id=record_id, actor=actor)
    return _see_other(f"/admin/users/{user_id}?saved=1")


# ---- roles and skills ------------------------------------------------------------------------


@router.get("/roles")
async def roles(request: Request, actor: ManageUsers) -> HTMLResponse:
    permissions = sorted(Permission, key=str)
    table = {role: ROLE_PERMISSIONS[role] for role in Role}
    return render(
        request, "web/admin/roles.html", roles=ROLE_NAMES, permissions=permissions, table=table
    )


@router.get("/skills")
async def skills(request: Request, db: DbSession, actor: ManageUsers) -> HTMLResponse:
    """Skills are free words on staff profiles; the page shows which are in use, and by whom,
    so that an admin spots the typo that keeps a ticket from routing."""
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    holders: dict[str, list[User]] = {}
    for user in await service.list_users(db, organisation_id=actor.organisation_id):
        for skill in user.skills:
            holders.setdefault(skill, []).append(user)
    return render(request, "web/admin/skills.html", holders=dict(sorted(holders.items())))


# ---- the admin's own security: two-factor enrolment and API tokens --------------------------


def qr_svg(uri: str) -> str:
    """The provisioning URI as an SVG QR code (inline markup, no script, no style attribute)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(
        buffer, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
        title="TOTP", dark="#000", light="#fff",
    )  # fmt: skip
    return buffer.getvalue().decode()


async def _security_page(
    request: Request, db: DbSession, actor: Actor, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    me = await _me(db, actor)
    tokens = await auth.list_tokens(db, user=me)
    now = datetime.now(UTC)
    response = render(
        request, "web/admin/security.html", me=me, tokens=tokens, now=now,
        token_days=TOKEN_DAYS, **extra,
    )  # fmt: skip
    response.status_code = status
    return response


# The admin area is the admin's; an admin's own tokens and second factor are managed here too.
Staff = ManageUsers


@router.get("/security")
async def security(request: Request, db: DbSession, actor: Staff) -> HTMLResponse:
    return await _security_page(request, db, actor)


@router.post("/security/totp/start")
async def totp_start(
    request: Request, db: DbSession, actor: Staff, _csrf: CsrfChecked
) -> HTMLResponse:
    me = await _me(db, actor)
    try:
        uri = await auth.start_totp_enrolment(db, user=me, actor=actor)
    except DomainError as exc:
        return await _security_page(request, db, actor, error=exc.message, status=409)
    return await _security_page(request, db, actor, qr=qr_svg(uri), uri=uri)


@router.post("/security/totp/confirm")
async def totp_confirm(
    request: Request,
    db: DbSession,
    actor: Staff,
    _csrf: CsrfChecked,
    code: Annotated[str, Form()],
) -> HTMLResponse:
    me = await _me(db, actor)
    outcome = await auth.confirm_totp_enrolment(db, user=me, code=code.strip(), actor=actor)
    if not isinstance(outcome, list):
        # The failed attempt is audited; keep that event, then say what went wrong.
        await db.commit()
        return await _security_page(request, db, actor, error=outcome.message, status=422)
    return await _security_page(request, db, actor, recovery_codes=outcome)


@router.post("/security/tokens")
async def create_token(
    request: Request,
    db: DbSession,
    actor: Staff,
    _csrf: CsrfChecked,
    name: Annotated[str, Form()],
    days: Annotated[int, Form()] = 30,
) -> HTMLResponse:
    me = await _me(db, actor)
    try:
        if not name.strip() or len(name) > 100:
            raise ValidationFailed("Name the token (up to 100 characters).", field="name")
        if days not in TOKEN_DAYS:
            raise ValidationFailed("Choose one of the offered lifetimes.", field="days")
        secret, _row = await auth.issue_token(
            db, user=me, kind="api", name=name.strip(), ttl=timedelta(days=days),
            mfa_verified=actor.mfa_verified, actor=actor,
        )  # fmt: skip
    except DomainError as exc:
        # Nothing was added: issue_token checks before it adds the row.
        return await _security_page(request, db, actor, error=exc.message, status=422)
    # The secret is shown once, here; only its digest is stored.
    return await _security_page(request, db, actor, new_token=secret, status=201)


@router.post("/security/tokens/{token_id}/revoke")
async def revoke_token(
    token_id: uuid.UUID, db: DbSession, actor: Staff, _csrf: CsrfChecked
) -> RedirectResponse:
    me = await _me(db, actor)
    await auth.revoke_token(db, user=me, token_id=token_id, actor=actor)
    return _see_other("/admin/security")


register_pages(router)
register_pages(admin_policy.router)
