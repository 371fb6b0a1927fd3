"""Logging in and out in the browser, first-login TOTP enrolment, and the language switch.

The login is ``identity.auth.login`` itself, behind the same per-address rate limit as
``POST /api/v1/auth/login``: the failure counters, lockouts and audit events are the API's. The
session cookie then holds the login token it issued and nothing else.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auxilio.server.api.deps import DbSession, SettingsDep
from auxilio.server.db.base import utcnow
from auxilio.server.errors import (
    AccountLocked,
    DomainError,
    InvalidTotp,
    MfaRequired,
    RateLimited,
)
from auxilio.server.identity import auth
from auxilio.server.identity.models import ApiToken
from auxilio.server.identity.ratelimit import Limited, rate_limits
from auxilio.server.identity.secrets import provisioning_uri
from auxilio.server.web import i18n
from auxilio.server.web.pages import (
    CsrfChecked,
    adopt_session,
    current_identity,
    flash,
    home_path,
    render,
    safe_next,
    translator,
)
from auxilio.server.web.session import LANG_COOKIE, SESSION_COOKIE

router = APIRouter(include_in_schema=False)


def _set_session(request: Request, response: Response, secret: str, token: ApiToken) -> None:
    """The login token as an HttpOnly, SameSite=Strict cookie that expires with the token."""
    seconds = max(1, int((token.expires_at - utcnow()).total_seconds()))
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=seconds,
        httponly=True,
        samesite="strict",
        # request.url.scheme is https behind a trusted proxy too (X-Forwarded-Proto, uvicorn).
        secure=request.url.scheme == "https",
        path="/",
    )


def _login_page(
    request: Request,
    *,
    email: str = "",
    organisation: str = "",
    error: str | None = None,
    need_code: bool = False,
    next_path: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "web/login.html",
        status_code=status_code,
        email=email,
        organisation_slug=organisation,
        error=error,
        need_code=need_code,
        next_path=next_path or "",
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, db: DbSession, next: str | None = None) -> Response:
    identity = await current_identity(request, db)
    if identity is not None and identity.token.scopes != [auth.ENROLMENT_SCOPE]:
        return RedirectResponse(safe_next(next) or home_path(request, identity.actor) or "/", 303)
    return _login_page(request, next_path=safe_next(next))


def _failure_text(request: Request, error: DomainError) -> tuple[str, bool]:
    """What the person reads after a refused login, and whether the code field matters."""
    _ = translator(request)
    if isinstance(error, MfaRequired):
        return _("This account uses two-factor authentication: enter the code as well."), True
    if isinstance(error, InvalidTotp):
        return _("The code is wrong, expired or already used."), True
    if isinstance(error, AccountLocked | RateLimited):
        seconds = int(error.details.get("retry_after_seconds") or 60)
        return _("Too many attempts. Try again in %(seconds)s seconds.", seconds=seconds), False
    return (
        _(
            "The email or password is wrong. If this address has accounts in several "
            "organisations, give the organisation too."
        ),
        False,
    )


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    _csrf: CsrfChecked,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    organisation: Annotated[str, Form(max_length=63)] = "",
    code: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    client = request.client.host if request.client else None
    code = code.strip()
    # Six digits is an authenticator's code; anything longer is a recovery code.
    totp_code = code if code.isdigit() and len(code) <= 8 else None
    recovery = code if code and totp_code is None else None
    wait = await rate_limits(request.app.state).check(Limited.LOGIN, client)
    outcome: auth.LoginResult | DomainError
    if wait:
        outcome = RateLimited(retry_after_seconds=math.ceil(wait))
    else:
        outcome = await auth.login(
            db,
            email=email,
            password=password,
            totp_code=totp_code,
            recovery_code=recovery,
            client_addr=client,
            settings=settings,
            organisation=organisation.strip() or None,
        )
    if not isinstance(outcome, auth.LoginResult):
        await db.commit()  # the failure counters and audit events stay
        text, need_code = _failure_text(request, outcome)
        status = 429 if isinstance(outcome, AccountLocked | RateLimited) else 401
        return _login_page(
            request,
            email=email,
            organisation=organisation,
            error=text,
            need_code=need_code,
            next_path=safe_next(next),
            status_code=status,
        )
    await adopt_session(request, db, user=outcome.user, token=outcome.token_row)
    if outcome.mfa_enrolment_required:
        response: Response = RedirectResponse("/login/enrol", status_code=303)
    elif outcome.recovery_codes:
        # A pending secret (made by `auxilio admin create-user`) confirmed by this first code.
        response = render(request, "web/recovery_codes.html", codes=outcome.recovery_codes)
    else:
        identity_home = _home_after_login(request, outcome)
        response = RedirectResponse(safe_next(next) or identity_home, status_code=303)
    _set_session(request, response, outcome.token, outcome.token_row)
    return response


def _home_after_login(request: Request, outcome: auth.LoginResult) -> str:
    actor = auth.actor_for(outcome.user, scopes=outcome.token_row.scopes, mfa_verified=True)
    return home_path(request, actor) or "/"


@router.post("/logout")
async def logout(request: Request, db: DbSession, _csrf: CsrfChecked) -> Response:
    identity = await current_identity(request, db)
    if identity is not None:
        await auth.revoke_login_token(db, token=identity.token, actor=identity.actor)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    _ = translator(request)
    flash(response, request, _("You have logged out."))
    return response


# ---- first-login TOTP enrolment --------------------------------------------------------------


@router.get("/login/enrol", response_class=HTMLResponse)
async def enrol_page(request: Request, db: DbSession) -> Response:
    identity = await current_identity(request, db)
    if identity is None or identity.token.scopes != [auth.ENROLMENT_SCOPE]:
        return RedirectResponse("/login", status_code=303)
    # A fresh secret each time the page is shown: one that was never confirmed is worth nothing.
    uri = await auth.start_totp_enrolment(db, user=identity.user, actor=identity.actor)
    return _enrol_page(request, uri)


def _enrol_page(request: Request, uri: str, error: str | None = None) -> HTMLResponse:
    qr = segno.make(uri, error="m")
    secret = uri.split("secret=", 1)[1].split("&", 1)[0] if "secret=" in uri else ""
    return render(
        request,
        "web/enrol.html",
        status_code=401 if error else 200,
        qr_data_uri=qr.svg_data_uri(scale=5, border=2),
        secret=secret,
        error=error,
    )


@router.post("/login/enrol", response_class=HTMLResponse)
async def enrol_confirm(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    _csrf: CsrfChecked,
    code: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    identity = await current_identity(request, db)
    if identity is None or identity.token.scopes != [auth.ENROLMENT_SCOPE]:
        return RedirectResponse("/login", status_code=303)
    user = identity.user
    client = request.client.host if request.client else None
    wait = await rate_limits(request.app.state).check(Limited.LOGIN, client)
    if wait:
        # Guessing the first code is guessing a login: the same limit holds.
        raise RateLimited(retry_after_seconds=math.ceil(wait))
    outcome = await auth.confirm_totp_enrolment(
        db, user=user, code=code.strip(), actor=identity.actor
    )
    if not isinstance(outcome, list):
        await db.commit()
        _ = translator(request)
        assert user.totp_secret is not None  # noqa: S101 -- the page started the enrolment
        uri = provisioning_uri(user.totp_secret, account=user.email, issuer=auth.ISSUER)
        return _enrol_page(request, uri, _("The code is wrong or expired. Try the next one."))
    # Password (minutes ago) and now the second factor: the enrolment token gives way to a
    # full login token, as the API's login does when a first code confirms a pending secret.
    await auth.revoke_login_token(db, token=identity.token, actor=identity.actor)
    secret, row = await auth.issue_token(
        db,
        user=user,
        kind="login",
        name="login",
        ttl=timedelta(seconds=settings.login_token_ttl_seconds),
        mfa_verified=True,
        actor=auth.actor_for(user),
    )
    await adopt_session(request, db, user=user, token=row)
    response = render(request, "web/recovery_codes.html", codes=outcome)
    _set_session(request, response, secret, row)
    return response


# ---- language --------------------------------------------------------------------------------


@router.post("/web/lang")
async def switch_language(
    request: Request,
    _csrf: CsrfChecked,
    lang: Annotated[str, Form(max_length=8)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    response = RedirectResponse(safe_next(next) or "/", status_code=303)
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=int(timedelta(days=365).total_seconds()),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response
