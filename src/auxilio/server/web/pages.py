"""What every web page needs: rendering in the person's language, who is logged in, CSRF.

Page modules (portal, console, supervisor, admin) build an ``APIRouter``, call
``register_pages(router)`` at import, and use:

- ``render(request, "web/area/page.html", **context)``: the template gets ``_``/``gettext``/
  ``ngettext`` (newstyle: ``_("Hello %(name)s", name=x)``), ``csrf_token``, ``csrf_field()``,
  ``actor``, ``person``, ``organisation``, ``locale``, ``timezone``, ``csp_nonce``, ``nav``,
  ``flashes`` and the filters ``datetime``, ``date``, ``number``, ``timeago``;
- ``WebActor`` (the logged-in person's Actor, else a redirect to /login), ``WebIdentity`` (the
  same with the User and the token), ``web_require(Permission.X)`` (the Actor, else a 403 page);
- ``CsrfChecked`` on every POST/PUT/PATCH/DELETE: the token comes in the ``X-CSRF-Token``
  header (htmx, fetch) or the ``csrf_token`` form field (``{{ csrf_field() }}``);
- ``translator(request)`` for words made in Python (``_ = translator(request)``), and
  ``flash(response, request, text)`` for a message shown on the next page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlencode

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission, Role
from auxilio.server.api.deps import DbSession, Identity
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.emergency.service import banner as emergency_banner
from auxilio.server.errors import DomainError, TokenInvalid
from auxilio.server.identity.auth import ENROLMENT_SCOPE, actor_for, resolve_token
from auxilio.server.identity.models import ApiToken, Organisation, User
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.web import i18n
from auxilio.server.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LANG_COOKIE,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    TZ_COOKIE,
    CsrfFailed,
    csrf_for_pre_session,
    csrf_for_token,
    csrf_key,
    new_pre_session,
    same,
)

TEMPLATES_DIR = Path(__file__).parent / "templates"
FLASH_COOKIE = "auxilio_flash"
# Page modules mounted by install_web when they exist; each calls register_pages(router).
PAGE_MODULES = ("portal", "portal_chat", "console", "console_kpis", "supervisor", "admin",
                "survey_page")

_PAGE_ROUTERS: list[APIRouter] = []


def N_(message: str) -> str:
    """Mark a msgid for extraction without translating it here (translate it when shown)."""
    return message


# ---- templates and languages -----------------------------------------------------------------


@cache
def environment(lang: str) -> Environment:
    """One Jinja environment per language, with that language's gettext installed (newstyle:
    translations are autoescaped and take keyword arguments)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    trans = i18n.translations(lang)
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by jinja2.ext.i18n
        trans.gettext, trans.ngettext, newstyle=True
    )
    env.filters.update(
        datetime=_filter("datetime"),
        date=_filter("date"),
        number=_filter("number"),
        timeago=_filter("timeago"),
    )
    return env


def _filter(name: str) -> Callable[..., str]:
    @pass_context
    def apply(context: Context, value: Any, *args: Any, **kwargs: Any) -> str:
        formatters: i18n.Formatters = context["_formatters"]
        result: str = getattr(formatters, name)(value, *args, **kwargs)
        return result

    return apply


def language(request: Request) -> str:
    """The person's language: the switch's cookie, their profile, then Accept-Language."""
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in i18n.LANGUAGES:
        return str(cookie)
    person: WebPerson | None = getattr(request.state, "web_user", None)
    for lang in person.languages if person else ():
        base = str(lang).split("-")[0].lower()
        if base in i18n.LANGUAGES:
            return base
    return i18n.negotiate(None, request.headers.get("accept-language"))


def time_zone(request: Request) -> str:
    """The browser's time zone (app.js sets the cookie), else the person's profile, else UTC."""
    person: WebPerson | None = getattr(request.state, "web_user", None)
    # app.js writes the zone percent-encoded (the "/" of "Europe/Madrid").
    cookie = unquote(request.cookies.get(TZ_COOKIE, ""))
    candidate = cookie or (person.timezone if person else None)
    return i18n.zone(candidate).key


def translator(request: Request) -> Callable[..., str]:
    """``_`` for words made in Python: ``_("Saved %(n)s", n=3)`` in the person's language."""
    trans = i18n.translations(language(request))

    def gettext(message: str, **variables: Any) -> str:
        text = trans.gettext(message)
        return text % variables if variables else text

    return gettext


# ---- CSRF ------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: bound to its login token, or before a login to its
    pre-session cookie (made here, and set on the response by ``render``)."""
    key = csrf_key(request.app.state)
    token_id: uuid.UUID | None = getattr(request.state, "web_token_id", None)
    if token_id is not None and getattr(request.state, "web_identity", None) is not None:
        return csrf_for_token(key, token_id)
    pre = request.cookies.get(PRE_SESSION_COOKIE) or getattr(request.state, "web_pre", None)
    if not pre:
        pre = new_pre_session()
        request.state.web_pre = pre
        request.state.web_pre_new = True
    return csrf_for_pre_session(key, pre)


async def check_csrf(request: Request, db: DbSession) -> None:
    """Refuse (403 csrf_failed) a state-changing request without this browser's token."""
    await current_identity(request, db)
    given = request.headers.get(CSRF_HEADER)
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    key = csrf_key(request.app.state)
    identity: Identity | None = getattr(request.state, "web_identity", None)
    if identity is not None:
        expected = csrf_for_token(key, request.state.web_token_id)
    else:
        pre = request.cookies.get(PRE_SESSION_COOKIE)
        if not pre:
            raise CsrfFailed()
        expected = csrf_for_pre_session(key, pre)
    if not same(given, expected):
        raise CsrfFailed()


CsrfChecked = Annotated[None, Depends(check_csrf)]


# ---- who is logged in ------------------------------------------------------------------------


class LoginRequired(DomainError):
    """No valid session: pages answer with a redirect to /login (htmx: HX-Redirect)."""

    code = "login_required"
    status = 401
    default_message = "Log in to see this page."


class EnrolmentRequired(DomainError):
    """Logged in with a token that may only enrol TOTP: the enrolment page comes first."""

    code = "mfa_enrolment_required"
    status = 403
    default_message = "Set up two-factor authentication first."


class WebForbidden(DomainError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to see this page."


async def current_identity(request: Request, db: AsyncSession) -> Identity | None:
    """The session cookie's login token, user and actor (None without a valid session); kept on
    request.state for the rest of the request (web_identity, web_user, web_organisation)."""
    if hasattr(request.state, "web_identity"):
        found: Identity | None = request.state.web_identity
        return found
    identity = None
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        try:
            token, user = await resolve_token(db, secret=secret)
        except TokenInvalid:
            token = None
        if token is not None and token.kind == "login":
            identity = await adopt_session(request, db, user=user, token=token)
    request.state.web_identity = identity
    return identity


@dataclass(frozen=True, slots=True)
class WebPerson:
    """What pages show of the logged-in person: a copy, because an error page is rendered
    after the request's transaction rolled back and its ORM objects can no longer load."""

    id: uuid.UUID
    email: str
    display_name: str
    role: str
    timezone: str
    languages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebOrganisation:
    id: uuid.UUID
    slug: str
    name: str


async def adopt_session(
    request: Request, db: AsyncSession, *, user: User, token: ApiToken
) -> Identity:
    """Make ``token`` this request's session (also right after a login, so that the page
    answering it already carries the new session's CSRF token)."""
    actor = actor_for(user, scopes=token.scopes, mfa_verified=token.mfa_verified)
    identity = Identity(user=user, token=token, actor=actor)
    org = await db.get(Organisation, user.organisation_id)
    request.state.web_identity = identity
    request.state.web_token_id = token.id
    request.state.web_user = WebPerson(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        timezone=user.timezone,
        languages=tuple(user.languages or ()),
    )
    request.state.web_organisation = (
        WebOrganisation(id=org.id, slug=org.slug, name=org.name) if org else None
    )
    # The organisation's emergency, for the banner every page shows (web/_emergency_banner.html).
    request.state.web_emergency = await emergency_banner(db, user=user)
    return identity


async def _web_identity(request: Request, db: DbSession) -> Identity:
    identity = await current_identity(request, db)
    if identity is None:
        raise LoginRequired()
    if identity.token.scopes == [ENROLMENT_SCOPE]:
        raise EnrolmentRequired()
    return identity


WebIdentity = Annotated[Identity, Depends(_web_identity)]


async def _web_actor(identity: WebIdentity) -> Actor:
    return identity.actor


WebActor = Annotated[Actor, Depends(_web_actor)]


def web_require(permission: Permission) -> Any:
    """A dependency: the logged-in person's Actor if the policy engine grants ``permission``;
    else the denial is audited and a 403 page shown."""

    async def dependency(request: Request, identity: WebIdentity, db: DbSession) -> Actor:
        decision = authorize_permission(identity.actor, permission)
        if not decision.allowed:
            await record(
                db,
                action=AuditAction.ACCESS_FORBIDDEN,
                actor=identity.actor,
                details={
                    "permission": str(permission),
                    "method": request.method,
                    "path": request.url.path,
                    "rule": decision.rule,
                },
            )
            # Committed here: the error below would roll the request's transaction back.
            await db.commit()
            raise WebForbidden(permission=str(permission))
        return identity.actor

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"web_require_{permission.value.replace(':', '_')}"
    return Depends(dependency)


def allowed(actor: Actor | None, permission: Permission) -> bool:
    return actor is not None and authorize_permission(actor, permission).allowed


# ---- navigation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NavLink:
    path: str
    label: str  # an English msgid, translated in base.html


# Each area and what shows it: end users see the portal, staff what their permissions allow.
_AREAS: tuple[tuple[str, str, Callable[[Actor], bool]], ...] = (
    ("/portal", N_("Portal"), lambda a: a.role == Role.END_USER),
    ("/console", N_("Console"), lambda a: allowed(a, Permission.SUPPORT_SESSION_REQUEST)),
    ("/supervisor", N_("Supervisor"), lambda a: allowed(a, Permission.REPORT_READ)),
    ("/admin", N_("Admin"), lambda a: allowed(a, Permission.USER_MANAGE)),
)


def _route_paths(app: FastAPI) -> set[str]:
    # The page routers' own routes (install_web records them): FastAPI's app.routes holds
    # included routers as opaque entries.
    paths: set[str] = getattr(app.state, "web_route_paths", set())
    return paths


def record_page_paths(app: FastAPI, routers: list[APIRouter]) -> None:
    """Remember which page paths this app serves (for navigation and home)."""
    app.state.web_route_paths = {
        str(route.path) for router in routers for route in router.routes if hasattr(route, "path")
    }


def navigation(request: Request, actor: Actor | None) -> list[NavLink]:
    """The areas this person may use, linked only where the page exists on this server."""
    if actor is None:
        return []
    paths = _route_paths(request.app)
    links = []
    for path, label, shows in _AREAS:
        found = path if path in paths else f"{path}/" if f"{path}/" in paths else None
        if found and shows(actor):
            links.append(NavLink(found, label))
    return links


def home_path(request: Request, actor: Actor) -> str | None:
    """Where a logged-in person starts: their first area, None if no area exists yet."""
    links = navigation(request, actor)
    return links[0].path if links else None


# ---- flash messages --------------------------------------------------------------------------


def _flash_mac(request: Request, payload: str) -> str:
    key = csrf_key(request.app.state)
    return hmac.new(key, b"flash:" + payload.encode(), hashlib.sha256).hexdigest()[:32]


def flash(response: Response, request: Request, message: str, level: str = "info") -> None:
    """Show ``message`` (already translated) on the next page this browser renders. Signed, so
    nothing but the server can put words in the page's message area."""
    payload = base64.urlsafe_b64encode(orjson.dumps([level, message])).decode()
    response.set_cookie(
        FLASH_COOKIE,
        f"{payload}.{_flash_mac(request, payload)}",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def _take_flashes(request: Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE, "")
    payload, _, mac = raw.partition(".")
    if not payload or not hmac.compare_digest(mac, _flash_mac(request, payload)):
        return []
    try:
        level, message = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return []
    return [(str(level), str(message))]


# ---- render ----------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page ``template`` in the person's language and time zone."""
    lang = language(request)
    tz = time_zone(request)
    identity: Identity | None = getattr(request.state, "web_identity", None)
    actor = identity.actor if identity else None
    token = csrf_token(request)
    flashes = _take_flashes(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    values: dict[str, Any] = {
        "request": request,
        "actor": actor,
        "person": getattr(request.state, "web_user", None) if identity else None,
        "organisation": getattr(request.state, "web_organisation", None),
        "locale": lang,
        "timezone": tz,
        "languages": i18n.LANGUAGE_NAMES,
        "csrf_token": token,
        "csrf_field": csrf_field,
        "csp_nonce": getattr(request.state, "csp_nonce", ""),
        "nav": navigation(request, actor),
        # may("report:read"): whether the page shows a link or control that needs the permission.
        "may": lambda permission: allowed(actor, Permission(permission)),
        "flashes": flashes,
        "_formatters": i18n.Formatters(lang, i18n.zone(tz)),
    }
    values.update(context)
    body = environment(lang).get_template(template).render(values)
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    response.headers["content-language"] = lang
    response.headers["cache-control"] = "no-store"
    response.headers["vary"] = "Cookie, Accept-Language"
    if getattr(request.state, "web_pre_new", False):
        response.set_cookie(
            PRE_SESSION_COOKIE,
            request.state.web_pre,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def page_error(request: Request, exc: DomainError) -> Response:
    """A DomainError raised by a page: a redirect to /login, or an error page."""
    if isinstance(exc, LoginRequired | EnrolmentRequired):
        target = "/login" if isinstance(exc, LoginRequired) else "/login/enrol"
        if isinstance(exc, LoginRequired) and request.method == "GET":
            target += "?" + _next_query(request)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    _ = translator(request)
    titles = {
        "csrf_failed": _("This form has expired"),
        "forbidden": _("Not allowed"),
        "rate_limited": _("Too many attempts"),
    }
    messages = {
        "csrf_failed": _(
            "The request did not carry this page's security token. Reload the page and try again."
        ),
        "forbidden": _("You are not allowed to see this page."),
        "rate_limited": _("Too many attempts from this address. Wait a minute and try again."),
    }
    code = exc.code if exc.code in titles else "forbidden" if exc.status == 403 else ""
    return render(
        request,
        "web/error.html",
        status_code=exc.status,
        title=titles.get(code, _("Something went wrong")),
        message=messages.get(code, exc.message),
        code=exc.code,
    )


def _next_query(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return urlencode({"next": path})


def safe_next(value: str | None) -> str | None:
    """A local path to go back to after a login or a language switch (never another site)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return None


def install_error_pages(app: FastAPI) -> None:
    """DomainErrors on page routes become pages; the API keeps its JSON errors."""
    json_handler = app.exception_handlers.get(DomainError)

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)  # noqa: S101 -- registered for DomainError only
        if wants_json(request) and json_handler is not None:
            response: Response = await json_handler(request, exc)  # type: ignore[misc]
            return response
        if wants_json(request):
            return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, exc.status)
        return await page_error(request, exc)

    app.add_exception_handler(DomainError, handler)


# ---- page routers ----------------------------------------------------------------------------


def register_pages(router: APIRouter) -> None:
    """Mount ``router`` (a page module's) on every app install_web builds from now on."""
    if router not in _PAGE_ROUTERS:
        _PAGE_ROUTERS.append(router)


def page_routers() -> list[APIRouter]:
    """Every registered page router, after importing the page modules that exist."""
    for name in PAGE_MODULES:
        module = f"auxilio.server.web.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    return list(_PAGE_ROUTERS)
