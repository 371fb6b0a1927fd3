"""Login with lockout and backoff, TOTP enrolment, recovery codes, login and API tokens.

A failed login is itself a state change (the failure counters) and an audit event, so
``login`` returns the error instead of raising it: the route commits, then raises.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import ROLE_PERMISSIONS, Permission, Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import (
    AccountLocked,
    Conflict,
    DomainError,
    InvalidCredentials,
    InvalidTotp,
    MfaRequired,
    NotFound,
    TokenInvalid,
    ValidationFailed,
)
from auxilio.server.identity import secrets as sec
from auxilio.server.identity.models import ApiToken, LoginThrottle, Organisation, RecoveryCode, User
from auxilio.server.identity.service import find_login_account, mfa_required
from auxilio.server.settings import Settings

ENROLMENT_SCOPE = "identity:totp_enrol"
ENROLMENT_TTL = timedelta(minutes=15)
ISSUER = "Auxilio"


def actor_for(
    user: User, *, scopes: Sequence[str] | None = None, mfa_verified: bool = False
) -> Actor:
    return Actor(
        id=user.id,
        display_name=user.display_name,
        organisation_id=user.organisation_id,
        role=Role(user.role),
        scopes=frozenset(scopes) if scopes is not None else None,
        mfa_verified=mfa_verified,
    )


# ---- lockout ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lockout:
    threshold: int
    base_seconds: float
    max_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Lockout:
        return cls(
            settings.lockout_threshold, settings.lockout_base_seconds, settings.lockout_max_seconds
        )

    def wait_after(self, failures: int) -> float:
        if failures < self.threshold:
            return 0.0
        return min(self.base_seconds * 2.0 ** (failures - self.threshold), self.max_seconds)


async def _throttle(
    db: AsyncSession, key: str, *, now: datetime, forget_after: float
) -> LoginThrottle:
    """The counter row for ``key``, locked for this transaction.

    Insert-or-ignore then ``SELECT ... FOR UPDATE``: two first failures at once cannot collide
    on the unique key, and parallel guesses queue on the row instead of both reading the old
    count (SQLite transactions begin IMMEDIATE, which serialises them the same way).
    """
    dialect = (await db.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await db.execute(
        insert(LoginThrottle)
        .values(id=uuid.uuid4(), key=key, failures=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = (
        await db.execute(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())
    ).scalar_one()
    # Old failures fade: a counter that has been quiet for longer than the longest lockout
    # starts again, so a shared office address does not drift into lockouts over months.
    if (
        row.failures
        and _locked_for(row, now) == 0
        and (now - row.updated_at).total_seconds() > forget_after
    ):
        row.failures = 0
    return row


def email_throttle_key(email: str) -> str:
    """The failure counter of an email, whether or not an account has it (hashed: the table
    must not become a list of every address someone typed)."""
    return "email:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:48]


def _locked_for(row: LoginThrottle, now: datetime) -> float:
    if row.locked_until is None or row.locked_until <= now:
        return 0.0
    return (row.locked_until - now).total_seconds()


async def _note_failure(
    db: AsyncSession, rows: Sequence[LoginThrottle], policy: Lockout, now: datetime
) -> None:
    for row in rows:
        row.failures += 1
        # The address counter tolerates more failures: many people may share one address.
        scale = 4 if row.key.startswith("addr:") else 1
        wait = Lockout(
            policy.threshold * scale, policy.base_seconds, policy.max_seconds
        ).wait_after(row.failures)
        row.locked_until = now + timedelta(seconds=wait) if wait else None
        row.updated_at = now


# ---- login -----------------------------------------------------------------------------------


@dataclass(slots=True)
class LoginResult:
    user: User
    token: str
    token_row: ApiToken
    mfa_enrolment_required: bool = False
    recovery_codes: list[str] = field(default_factory=list)


async def login(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    totp_code: str | None,
    recovery_code: str | None,
    client_addr: str | None,
    settings: Settings,
    organisation: str | None = None,
    now: datetime | None = None,
) -> LoginResult | DomainError:
    now = now or utcnow()
    policy = Lockout.from_settings(settings)
    user, ambiguous = await find_login_account(db, email=email, organisation=organisation)
    forget = max(settings.lockout_forget_seconds, settings.lockout_max_seconds)
    # Counted per email whether or not the account exists, so that a lockout does not reveal
    # which emails have accounts.
    email_key = email_throttle_key(email)
    rows = [
        await _throttle(db, f"addr:{client_addr or 'unknown'}", now=now, forget_after=forget),
        await _throttle(db, email_key, now=now, forget_after=forget),
    ]
    anonymous = Actor(
        id=None,
        display_name=email.strip().lower()[:200] or "anonymous",
        organisation_id=user.organisation_id if user else None,
    )
    wait = max(_locked_for(r, now) for r in rows)
    if wait:
        await record(
            db,
            action=AuditAction.LOGIN_LOCKED,
            actor=anonymous,
            target_type="user",
            target_id=user.id if user else None,
            details={"retry_after_seconds": round(wait)},
        )
        return AccountLocked(retry_after_seconds=round(wait))

    async def fail(reason: str, error: DomainError) -> DomainError:
        await _note_failure(db, rows, policy, now)
        action = AuditAction.TOTP_FAILED if reason.startswith("totp") else AuditAction.LOGIN_FAILED
        await record(
            db,
            action=action,
            actor=anonymous,
            target_type="user",
            target_id=user.id if user else None,
            details={"reason": reason},
        )
        return error

    if user is None:
        # One hash either way: the time taken says nothing about whether the address exists.
        sec.burn_password_check(password)
        return await fail("ambiguous_email" if ambiguous else "unknown_email", _bad_credentials())
    if not sec.verify_password(user.password_hash, password) or not user.is_active:
        return await fail("bad_password" if user.is_active else "inactive", _bad_credentials())

    org = await db.get(Organisation, user.organisation_id)
    assert org is not None  # noqa: S101 -- foreign key
    recovery_codes: list[str] = []
    mfa_verified = False
    enrolment_required = False
    if user.mfa_enrolled:
        if recovery_code:
            if not await _spend_recovery_code(db, user=user, code=recovery_code, now=now):
                return await fail("totp_bad_recovery_code", InvalidTotp())
            await record(
                db,
                action=AuditAction.RECOVERY_CODE_USED,
                actor=actor_for(user),
                target_type="user",
                target_id=user.id,
            )
        elif not totp_code:
            # Not a failure: the first leg of a two-step login.
            return MfaRequired()
        elif not _accept_totp(user, totp_code, now):
            return await fail("totp_bad_code", InvalidTotp())
        mfa_verified = True
    elif user.totp_secret and totp_code:
        # Created with a pending secret (the CLI printed the URI): the first good code confirms.
        if not _accept_totp(user, totp_code, now):
            return await fail("totp_bad_code", InvalidTotp())
        recovery_codes = await _confirm_enrolment(db, user=user, now=now)
        mfa_verified = True
    elif await mfa_required(db, org=org, role=Role(user.role)):
        enrolment_required = True

    for row in rows:
        if row.key.startswith("email:"):
            row.failures, row.locked_until = 0, None
    user.last_login_at = now
    ttl = (
        ENROLMENT_TTL if enrolment_required else timedelta(seconds=settings.login_token_ttl_seconds)
    )
    token, token_row = await issue_token(
        db,
        user=user,
        kind="login",
        name="login",
        ttl=ttl,
        mfa_verified=mfa_verified,
        scopes=[ENROLMENT_SCOPE] if enrolment_required else None,
        actor=actor_for(user),
        now=now,
    )
    await record(
        db,
        action=AuditAction.LOGIN_SUCCEEDED,
        actor=actor_for(user),
        target_type="user",
        target_id=user.id,
        details={"mfa": mfa_verified, "enrolment_only": enrolment_required},
    )
    return LoginResult(
        user=user,
        token=token,
        token_row=token_row,
        mfa_enrolment_required=enrolment_required,
        recovery_codes=recovery_codes,
    )


def _bad_credentials() -> InvalidCredentials:
    # The same words for every failure, including an address that several organisations use.
    return InvalidCredentials(
        "The email or password is wrong. If this address has accounts in several "
        "organisations, give the organisation too."
    )


def _accept_totp(user: User, code: str, now: datetime) -> bool:
    assert user.totp_secret is not None  # noqa: S101 -- callers check enrolment first
    step = sec.match_totp(user.totp_secret, code, now=now, last_step=user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


async def _spend_recovery_code(db: AsyncSession, *, user: User, code: str, now: datetime) -> bool:
    wanted = sec.normalise_recovery_code(code)
    rows = await db.execute(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )
    for row in rows.scalars():
        if sec.recovery_code_matches(row.code_hash, user_id=str(user.id), code=wanted):
            row.used_at = now
            return True
    return False


# ---- TOTP enrolment --------------------------------------------------------------------------


async def start_totp_enrolment(db: AsyncSession, *, user: User, actor: Actor) -> str:
    """Issue a pending secret and return its provisioning URI."""
    if user.mfa_enrolled:
        raise Conflict("Two-factor authentication is already enrolled.")
    user.totp_secret = sec.new_totp_secret()
    user.totp_last_step = None
    await record(
        db,
        action=AuditAction.TOTP_ENROLMENT_STARTED,
        actor=actor,
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
    )
    return sec.provisioning_uri(user.totp_secret, account=user.email, issuer=ISSUER)


async def confirm_totp_enrolment(
    db: AsyncSession, *, user: User, code: str, actor: Actor, now: datetime | None = None
) -> list[str] | DomainError:
    now = now or utcnow()
    if user.mfa_enrolled:
        return Conflict("Two-factor authentication is already enrolled.")
    if not user.totp_secret:
        return Conflict("Start the enrolment first.")
    if not _accept_totp(user, code, now):
        await record(
            db,
            action=AuditAction.TOTP_FAILED,
            actor=actor,
            organisation_id=user.organisation_id,
            target_type="user",
            target_id=user.id,
            details={"reason": "totp_bad_code", "during": "enrolment"},
        )
        return InvalidTotp()
    return await _confirm_enrolment(db, user=user, now=now)


async def _confirm_enrolment(db: AsyncSession, *, user: User, now: datetime) -> list[str]:
    user.totp_confirmed_at = now
    codes = sec.new_recovery_codes()
    for code in codes:
        digest = sec.recovery_code_digest(str(user.id), sec.normalise_recovery_code(code))
        db.add(RecoveryCode(user_id=user.id, code_hash=digest))
    await record(
        db,
        action=AuditAction.TOTP_ENROLLED,
        actor=actor_for(user, mfa_verified=True),
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
        details={"recovery_codes": len(codes)},
    )
    return codes


# ---- tokens ----------------------------------------------------------------------------------


async def issue_token(
    db: AsyncSession,
    *,
    user: User,
    kind: str,
    name: str,
    ttl: timedelta,
    actor: Actor,
    scopes: Sequence[str] | None = None,
    mfa_verified: bool = False,
    now: datetime | None = None,
) -> tuple[str, ApiToken]:
    now = now or utcnow()
    if kind == "api":
        allowed = {str(p) for p in ROLE_PERMISSIONS[Role(user.role)]}
        if actor.scopes is not None:
            # A scoped token mints tokens at most as narrow as itself, never wider.
            allowed &= actor.scopes
            scopes = sorted(allowed) if scopes is None else scopes
    if scopes is not None and kind == "api":
        unknown = sorted(set(scopes) - allowed)
        if unknown:
            raise ValidationFailed(
                "A token cannot carry permissions its owner lacks.",
                field="scopes",
                not_allowed=unknown,
            )
    if ttl <= timedelta(0) or ttl > timedelta(days=366):
        raise ValidationFailed("A token lives between one second and 366 days.", field="ttl")
    secret = sec.new_token_secret()
    row = ApiToken(
        organisation_id=user.organisation_id,
        user_id=user.id,
        kind=kind,
        name=name,
        prefix=secret[:10],
        token_hash=sec.token_digest(secret),
        scopes=list(scopes) if scopes is not None else None,
        mfa_verified=mfa_verified,
        created_at=now,
        expires_at=now + ttl,
    )
    db.add(row)
    await db.flush()
    if kind == "api":
        await record(
            db,
            action=AuditAction.TOKEN_CREATED,
            actor=actor,
            organisation_id=user.organisation_id,
            target_type="token",
            target_id=row.id,
            details={"name": name, "scopes": row.scopes, "expires_at": row.expires_at.isoformat()},
        )
    return secret, row


async def resolve_token(
    db: AsyncSession, *, secret: str, now: datetime | None = None
) -> tuple[ApiToken, User]:
    now = now or utcnow()
    row = (
        await db.execute(select(ApiToken).where(ApiToken.token_hash == sec.token_digest(secret)))
    ).scalar_one_or_none()
    if row is None:
        raise TokenInvalid(reason="unknown")
    if row.revoked_at is not None:
        raise TokenInvalid(reason="revoked")
    if row.expires_at <= now:
        raise TokenInvalid(reason="expired")
    user = await db.get(User, row.user_id)
    if user is None or not user.is_active:
        raise TokenInvalid(reason="inactive_user")
    # Written at most once a minute: a write per request would serialise every read on SQLite.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return row, user


async def last_revocation(db: AsyncSession, *, user_id: uuid.UUID) -> datetime | None:
    """When the user's most recently revoked token was revoked (None: never)."""
    # ORDER BY + LIMIT rather than MAX(): the column type converts the value back to an aware
    # datetime only when the column itself is selected.
    latest = await db.execute(
        select(ApiToken.revoked_at)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_not(None))
        .order_by(ApiToken.revoked_at.desc())
        .limit(1)
    )
    return latest.scalar_one_or_none()


async def token_problem(
    db: AsyncSession, *, token_id: uuid.UUID, now: datetime | None = None
) -> str | None:
    """Why a token no longer authenticates ("unknown", "revoked", "expired", "inactive_user"),
    or None while it does: for connections that outlive the request that checked it."""
    now = now or utcnow()
    row = await db.get(ApiToken, token_id)
    if row is None:
        return "unknown"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= now:
        return "expired"
    user = await db.get(User, row.user_id)
    return "inactive_user" if user is None or not user.is_active else None


async def list_tokens(db: AsyncSession, *, user: User) -> list[ApiToken]:
    rows = await db.execute(
        select(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.kind == "api")
        .order_by(ApiToken.created_at)
    )
    return list(rows.scalars())


async def revoke_token(
    db: AsyncSession, *, user: User, token_id: uuid.UUID, actor: Actor
) -> ApiToken:
    row = await db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("No such token.", token_id=str(token_id))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await record(
            db,
            action=AuditAction.TOKEN_REVOKED,
            actor=actor,
            organisation_id=user.organisation_id,
            target_type="token",
            target_id=row.id,
        )
    return row


def permissions_of(actor: Actor) -> frozenset[Permission]:
    if actor.role is None:
        return frozenset()
    granted = ROLE_PERMISSIONS[actor.role]
    if actor.scopes is None:
        return granted
    return frozenset(p for p in granted if str(p) in actor.scopes)


async def revoke_login_token(db: AsyncSession, *, token: ApiToken, actor: Actor) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await record(
            db,
            action=AuditAction.TOKEN_REVOKED,
            actor=actor,
            organisation_id=token.organisation_id,
            target_type="token",
            target_id=token.id,
            details={"kind": token.kind, "reason": "logout"},
        )
