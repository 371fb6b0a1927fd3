"""Organisations, users (with staff profiles), TOTP, recovery codes, trainings, tokens, lockout."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Staff must have TOTP; an active policy's staff.mfa_required takes precedence.
    mfa_required_for_staff: Mapped[bool] = mapped_column(Boolean, default=True)
    # Next ticket number; incremented under a row lock so numbers never repeat.
    ticket_counter: Mapped[int] = mapped_column(Integer, default=0)
    # What the KPIs need from the organisation (docs/kpis.md): cost per hour by role, the cost of
    # one support session, SLA targets by priority. Checked by reporting.schemas.KpiSettings.
    kpi_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    __tablename__ = "users"
    # Emails are unique per organisation (docs/adr/0005): whether an address has an account in
    # another organisation is none of this one's business.
    __table_args__ = (
        UniqueConstraint("organisation_id", "email", name="uq_users_organisation_id_email"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # Staff profile (unused for end users).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    # {"mon": ["09:00-17:00"], ...} in the user's own time zone.
    working_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The team a technician belongs to (a KPI slice) and their own cost per hour in cents, which
    # takes precedence over their role's rate in the organisation's kpi_settings.
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hourly_cost_cents: Mapped[int | None] = mapped_column(Integer, nullable=True)

    # TOTP: the secret is pending until confirmed by a first valid code.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last accepted time step: a code is accepted once only (replay protection).
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)

    @property
    def mfa_enrolled(self) -> bool:
        return self.totp_confirmed_at is not None


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TrainingRecord(Base):
    __tablename__ = "training_records"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    training_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)


class ApiToken(Base):
    """Login tokens and scoped API tokens; only a SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # "login" | "api"
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # None: everything the role allows; otherwise a subset of permission strings.
    scopes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    mfa_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginThrottle(Base):
    """Failure counters per account and per client address (keys "account:<id>", "addr:<ip>")."""

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("key", name="uq_login_throttles_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(120))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
