"""Organisations, users, staff profiles and training records."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import STAFF_ROLES, Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.errors import AlreadyExists, NotFound, ValidationFailed
from auxilio.server.identity import secrets as sec
from auxilio.server.identity.models import Organisation, TrainingRecord, User
from auxilio.server.policies.service import get_active_policy, get_active_version
from auxilio.server.reporting.schemas import KpiSettings

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,189}\.[^@\s\x00-\x1f.]{2,63}$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A window may end at 24:00 (midnight), but there is no 24:30.
WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")
MIN_PASSWORD = 12


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise ValidationFailed("That is not an email address.", field="email")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"The password needs at least {MIN_PASSWORD} characters.", field="password"
        )
    if len(password) > 1024:
        raise ValidationFailed("The password is too long.", field="password")


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"{name!r} is not an IANA time zone.", field="timezone") from exc
    return name


def check_working_hours(hours: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    clean: dict[str, list[str]] = {}
    for day, windows in hours.items():
        if day not in DAYS:
            raise ValidationFailed(
                f"{day!r} is not a day (use {', '.join(DAYS)}).", field="working_hours"
            )
        for window in windows:
            match = WINDOW_RE.match(window)
            if not match or window[:5] >= window[6:]:
                raise ValidationFailed(
                    f"{window!r} is not a window like 09:00-17:00.", field="working_hours"
                )
        clean[day] = list(windows)
    return clean


async def create_organisation(
    db: AsyncSession, *, slug: str, name: str, actor: Actor
) -> Organisation:
    if not SLUG_RE.match(slug):
        raise ValidationFailed("A slug is lowercase letters, digits and dashes.", field="slug")
    if await get_organisation_by_slug(db, slug=slug) is not None:
        raise AlreadyExists(f"Organisation {slug!r} already exists.", field="slug")
    org = Organisation(id=uuid.uuid4(), slug=slug, name=name.strip())
    db.add(org)
    await db.flush()
    await record(
        db,
        action=AuditAction.ORGANISATION_CREATED,
        actor=actor,
        organisation_id=org.id,
        target_type="organisation",
        target_id=org.id,
        details={"slug": slug},
    )
    return org


async def get_organisation_by_slug(db: AsyncSession, *, slug: str) -> Organisation | None:
    return (
        await db.execute(select(Organisation).where(Organisation.slug == slug))
    ).scalar_one_or_none()


async def get_organisation(db: AsyncSession, *, organisation_id: uuid.UUID) -> Organisation | None:
    return await db.get(Organisation, organisation_id)


async def get_kpi_settings(db: AsyncSession, *, organisation_id: uuid.UUID) -> KpiSettings:
    """The organisation's costs and SLA targets for the KPIs (all empty until set)."""
    org = await db.get(Organisation, organisation_id)
    if org is None:
        raise NotFound("No such organisation.")
    return KpiSettings.model_validate(org.kpi_settings or {})


async def update_kpi_settings(
    db: AsyncSession, *, organisation_id: uuid.UUID, settings: KpiSettings, actor: Actor
) -> KpiSettings:
    """Replace the organisation's KPI settings; audits the settings before and after."""
    org = await db.get(Organisation, organisation_id, with_for_update=True)
    if org is None:
        raise NotFound("No such organisation.")
    before = KpiSettings.model_validate(org.kpi_settings or {}).model_dump(mode="json")
    org.kpi_settings = settings.model_dump(mode="json")
    await db.flush()
    await record(
        db,
        action=AuditAction.ORGANISATION_KPI_SETTINGS_CHANGED,
        actor=actor,
        organisation_id=organisation_id,
        target_type="organisation",
        target_id=organisation_id,
        details={"before": before, "after": org.kpi_settings},
    )
    return settings


async def allocate_ticket_number(db: AsyncSession, *, organisation_id: uuid.UUID) -> int:
    """The organisation's next ticket number. The row lock makes concurrent openings queue
    here, so numbers never repeat or skip."""
    org = (
        await db.execute(
            select(Organisation).where(Organisation.id == organisation_id).with_for_update()
        )
    ).scalar_one()
    org.ticket_counter += 1
    return org.ticket_counter


async def mfa_required(db: AsyncSession, *, org: Organisation, role: Role) -> bool:
    """Whether ``role`` must use TOTP: the active policy's ``staff.mfa_required`` decides; an
    organisation with no activated version keeps its own setting (default: required)."""
    if role not in STAFF_ROLES:
        return False
    if await get_active_version(db, organisation_id=org.id) is None:
        return org.mfa_required_for_staff
    active = await get_active_policy(db, organisation_id=org.id)
    return active.policy.staff.mfa_required


async def create_user(
    db: AsyncSession,
    *,
    organisation: Organisation,
    email: str,
    display_name: str,
    role: Role,
    password: str,
    actor: Actor,
    timezone: str = "UTC",
    skills: Sequence[str] = (),
    languages: Sequence[str] = (),
    working_hours: Mapping[str, Sequence[str]] | None = None,
) -> User:
    email = normalise_email(email)
    check_password_strength(password)
    # Only this organisation's users count: an address used in another organisation is not
    # this one's to know about (docs/adr/0005).
    existing = (
        await db.execute(
            select(User.id).where(User.organisation_id == organisation.id, User.email == email)
        )
    ).first()
    if existing is not None:
        raise AlreadyExists("A user with that email already exists.", field="email")
    user = User(
        id=uuid.uuid4(),
        organisation_id=organisation.id,
        email=email,
        display_name=display_name.strip() or email,
        role=str(role),
        password_hash=sec.hash_password(password),
        timezone=check_timezone(timezone),
        skills=sorted({s.strip().lower() for s in skills if s.strip()}),
        languages=list(languages),
        working_hours=check_working_hours(working_hours or {}),
    )
    db.add(user)
    await db.flush()
    await record(
        db,
        action=AuditAction.USER_CREATED,
        actor=actor,
        organisation_id=organisation.id,
        target_type="user",
        target_id=user.id,
        details={"email": email, "role": str(role)},
    )
    return user


async def get_user(
    db: AsyncSession, *, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> User | None:
    user = await db.get(User, user_id)
    # Another organisation's user is indistinguishable from one that does not exist.
    return user if user is not None and user.organisation_id == organisation_id else None


async def get_user_or_raise(
    db: AsyncSession, *, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> User:
    user = await get_user(db, organisation_id=organisation_id, user_id=user_id)
    if user is None:
        raise NotFound("No such user.", user_id=str(user_id))
    return user


async def find_login_account(
    db: AsyncSession, *, email: str, organisation: str | None
) -> tuple[User | None, bool]:
    """The one account a login names, and whether the email alone was ambiguous.

    With an organisation slug: that organisation's user with this email. Without one: the
    server's only user with this email; when several organisations have one, nobody (the login
    then fails exactly as for an unknown email, so it reveals nothing).
    """
    query = select(User).where(User.email == email.strip().lower())
    if organisation is not None:
        org = await get_organisation_by_slug(db, slug=organisation.strip().lower())
        if org is None:
            return None, False
        query = query.where(User.organisation_id == org.id)
    found = list((await db.execute(query.limit(2))).scalars())
    return (found[0], False) if len(found) == 1 else (None, len(found) > 1)


async def list_users(
    db: AsyncSession, *, organisation_id: uuid.UUID, role: Role | None = None
) -> list[User]:
    query = select(User).where(User.organisation_id == organisation_id)
    if role is not None:
        query = query.where(User.role == str(role))
    return list((await db.execute(query.order_by(User.created_at))).scalars())


async def update_user(
    db: AsyncSession, *, user: User, actor: Actor, changes: Mapping[str, Any]
) -> User:
    """Change display name, role, activity or the staff profile; audits exactly what changed."""
    if not changes:
        raise ValidationFailed("Nothing to change: give at least one field.")
    before: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "timezone":
            value = check_timezone(value)
        elif name == "working_hours":
            value = check_working_hours(value)
        elif name == "skills":
            value = sorted({s.strip().lower() for s in value if s.strip()})
        elif name == "role":
            value = str(Role(value))
        elif name == "team":
            value = value.strip() or None if value is not None else None
        elif name not in {"display_name", "languages", "is_active", "hourly_cost_cents"}:
            raise ValidationFailed(f"{name!r} cannot be changed here.", field=name)
        before[name] = getattr(user, name)
        setattr(user, name, value)
    profile = {"timezone", "working_hours", "skills", "languages", "team", "hourly_cost_cents"}
    action = (
        AuditAction.STAFF_PROFILE_UPDATED
        if set(changes) <= profile
        else AuditAction.USER_DEACTIVATED
        if changes.get("is_active") is False
        else AuditAction.USER_UPDATED
    )
    await db.flush()
    await record(
        db,
        action=action,
        actor=actor,
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
        details={
            "changed": sorted(changes),
            "before": before,
            "after": {k: getattr(user, k) for k in changes},
        },
    )
    return user


async def record_training(
    db: AsyncSession,
    *,
    user: User,
    training_id: str,
    title: str,
    completed_at: datetime,
    expires_at: datetime | None,
    actor: Actor,
) -> TrainingRecord:
    if expires_at is not None and expires_at <= completed_at:
        raise ValidationFailed(
            "A training cannot expire before it was completed.", field="expires_at"
        )
    row = TrainingRecord(
        organisation_id=user.organisation_id,
        user_id=user.id,
        training_id=training_id,
        title=title,
        completed_at=completed_at,
        expires_at=expires_at,
        recorded_by_id=actor.id,
    )
    db.add(row)
    await db.flush()
    await record(
        db,
        action=AuditAction.TRAINING_RECORDED,
        actor=actor,
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
        details={
            "training_id": training_id,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return row


async def list_trainings(db: AsyncSession, *, user: User) -> list[TrainingRecord]:
    rows = await db.execute(
        select(TrainingRecord)
        .where(TrainingRecord.user_id == user.id)
        .order_by(TrainingRecord.completed_at)
    )
    return list(rows.scalars())


async def expired_trainings(db: AsyncSession, *, user: User, now: datetime) -> dict[str, datetime]:
    """Training id -> when the latest of its records stopped being valid, for the trainings
    with no current record (so a refusal can say "expired on DATE", not "no record")."""
    current = await current_trainings(db, user=user, now=now)
    lapsed: dict[str, datetime] = {}
    for row in await list_trainings(db, user=user):
        if row.training_id in current or row.expires_at is None:
            continue
        if row.training_id not in lapsed or lapsed[row.training_id] < row.expires_at:
            lapsed[row.training_id] = row.expires_at
    return lapsed


async def current_trainings(db: AsyncSession, *, user: User, now: datetime) -> dict[str, datetime]:
    """Training id -> the latest completion whose record has not expired (the policy then
    judges its age against ``staff.trainings_required``)."""
    done: dict[str, datetime] = {}
    for row in await list_trainings(db, user=user):
        if row.expires_at is not None and row.expires_at <= now:
            continue
        if row.training_id not in done or done[row.training_id] < row.completed_at:
            done[row.training_id] = row.completed_at
    return done


async def remove_training(
    db: AsyncSession, *, user: User, training_record_id: uuid.UUID, actor: Actor
) -> None:
    """Withdraw a training record (entered by mistake, or the certificate was withdrawn).

    A technician whose active policy requires that training loses it at once: the support-session
    scheduler ends their live sessions at its next tick."""
    row = await db.get(TrainingRecord, training_record_id)
    if row is None or row.user_id != user.id:
        raise NotFound("No such training record.", training_record_id=str(training_record_id))
    await db.delete(row)
    await db.flush()
    await record(
        db,
        action=AuditAction.TRAINING_REMOVED,
        actor=actor,
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
        details={"training_id": row.training_id, "training_record_id": str(row.id)},
    )


async def count_users(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(User))).scalar_one())
