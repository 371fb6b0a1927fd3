"""Annotated dependency aliases: the database session, the settings, who is calling, and the
one permission check every route declares.

``require(Permission.X)`` is the only way a route gets an authenticated identity. It asks the
policy engine; a denial is audited (in its own transaction, since the request's is rolled
back) and answered 403. The matrix test in tests/server/test_authorization.py reads the
``permission`` attribute these dependencies carry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.policy.roles import Permission
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.failures import admit_failure
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.errors import Forbidden, MfaEnrolmentRequired, TokenInvalid, Unauthenticated
from auxilio.server.identity.auth import ENROLMENT_SCOPE, actor_for, resolve_token
from auxilio.server.identity.models import ApiToken, User
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.settings import Settings
from auxilio.server.web.session import (
    CSRF_HEADER,
    SESSION_COOKIE,
    CsrfFailed,
    csrf_for_token,
    csrf_key,
    same,
)


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    async with _sessionmaker(request)() as db:
        try:
            yield db
            await db.commit()
        except BaseException:
            await db.rollback()
            raise


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the commit happens before the response is sent, never after.
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True, slots=True)
class Identity:
    user: User
    token: ApiToken
    actor: Actor


async def _audit_apart(request: Request, db: AsyncSession, **kwargs: Any) -> None:
    # The request's own transaction is about to roll back; a denial must still be recorded.
    # End it first: on SQLite it holds the write lock (BEGIN IMMEDIATE), and the audit
    # transaction would queue behind it until the busy timeout, then fail.
    await db.rollback()
    async with _sessionmaker(request)() as audit_db, audit_db.begin():
        await record(audit_db, **kwargs)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated()
    return value.strip()


async def _identify(request: Request, db: AsyncSession) -> Identity:
    # A browser sends its login token in the session cookie (web/session.py); the cookie goes
    # with any request, so such a call also needs the page's CSRF token in X-CSRF-Token.
    from_cookie = "authorization" not in request.headers and SESSION_COOKIE in request.cookies
    secret = request.cookies[SESSION_COOKIE] if from_cookie else _bearer(request)
    try:
        token, user = await resolve_token(db, secret=secret)
    except TokenInvalid as exc:
        reason = str(exc.details.get("reason"))
        # Anyone can send tokens: the first per address and minute is recorded, the rest counted.
        if admit_failure(db, AuditAction.TOKEN_REJECTED, reason=reason):
            await _audit_apart(
                request,
                db,
                action=AuditAction.TOKEN_REJECTED,
                actor=Actor(id=None, display_name="anonymous", organisation_id=None),
                details={"reason": reason, "prefix": secret[:10], "path": request.url.path},
            )
        raise
    if from_cookie:
        expected = csrf_for_token(csrf_key(request.app.state), token.id)
        if token.kind != "login" or not same(request.headers.get(CSRF_HEADER), expected):
            raise CsrfFailed()
    actor = actor_for(user, scopes=token.scopes, mfa_verified=token.mfa_verified)
    return Identity(user=user, token=token, actor=actor)


async def enrolment_identity(request: Request, db: DbSession) -> Identity:
    """A person who just logged in, including with a token limited to TOTP enrolment.

    API tokens are refused: a leaked automation token must not be able to bind the account's
    second factor to someone else's authenticator.
    """
    identity = await _identify(request, db)
    if identity.token.kind != "login":
        raise Forbidden("Two-factor enrolment needs a login, not an API token.")
    return identity


EnrolmentCaller = Annotated[Identity, Depends(enrolment_identity)]


PermissionDependency = Callable[[Request, AsyncSession], Coroutine[Any, Any, Identity]]


def require(permission: Permission) -> Any:
    """A dependency that authenticates the caller and checks ``permission`` through the engine."""

    async def dependency(request: Request, db: DbSession) -> Identity:
        identity = await _identify(request, db)
        if identity.token.scopes == [ENROLMENT_SCOPE]:
            raise MfaEnrolmentRequired()
        decision = authorize_permission(identity.actor, permission)
        if not decision.allowed:
            await _audit_apart(
                request,
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
            raise Forbidden(permission=str(permission))
        return identity

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{permission.value.replace(':', '_')}"
    return Depends(dependency)
