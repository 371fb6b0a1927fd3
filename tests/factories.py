"""Factories: organisations, users of every role (staff with real TOTP), tokens, tickets."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from auxilio.policy.roles import STAFF_ROLES, Role
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.identity import auth, service
from auxilio.server.identity import secrets as sec
from auxilio.server.identity.models import Organisation, User

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@dataclass
class Person:
    user: User
    token: str
    totp_secret: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_org(app: FastAPI, slug: str | None = None) -> Organisation:
    async with app.state.sessionmaker() as db, db.begin():
        return await service.create_organisation(
            db,
            slug=slug or f"org-{next(_counter)}",
            name="Test organisation",
            actor=Actor.system(),
        )


async def make_user(
    app: FastAPI,
    org: Organisation,
    role: Role = Role.END_USER,
    *,
    email: str | None = None,
    skills: list[str] | None = None,
    working_hours: dict[str, list[str]] | None = None,
    timezone: str = "UTC",
    enrol_totp: bool | None = None,
) -> Person:
    """A user with a login token. Staff are enrolled in TOTP through the real service code."""
    enrol = role in STAFF_ROLES if enrol_totp is None else enrol_totp
    async with app.state.sessionmaker() as db, db.begin():
        org_row = await db.get(Organisation, org.id)
        assert org_row is not None
        user = await service.create_user(
            db,
            organisation=org_row,
            email=email or f"user{next(_counter)}@example.test",
            display_name=f"{role.value.replace('_', ' ').title()} {next(_counter)}",
            role=role,
            password=PASSWORD,
            actor=Actor.system(org.id),
            skills=skills or [],
            working_hours=working_hours or {},
            timezone=timezone,
        )
        secret = None
        if enrol:
            actor = auth.actor_for(user)
            await auth.start_totp_enrolment(db, user=user, actor=actor)
            secret = user.totp_secret
            assert secret is not None
            step = int(utcnow().timestamp()) // sec.TOTP_PERIOD
            codes = await auth.confirm_totp_enrolment(
                db, user=user, code=sec.totp_code_at(secret, step), actor=actor
            )
            assert isinstance(codes, list)
        token, _ = await auth.issue_token(
            db,
            user=user,
            kind="login",
            name="factory",
            ttl=timedelta(hours=1),
            mfa_verified=enrol,
            actor=auth.actor_for(user),
        )
    return Person(user=user, token=token, totp_secret=secret)


# ---- tickets and devices ---------------------------------------------------------------------

ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def make_technician(
    app: FastAPI,
    org: Organisation,
    *,
    skills: list[str] | None = None,
    working_hours: dict[str, list[str]] | None = None,
    timezone: str = "UTC",
    role: Role = Role.TECHNICIAN,
) -> Person:
    """A technician on duty around the clock unless told otherwise.

    Not enrolled in TOTP: the token is minted directly, and ten argon2 recovery-code hashes per
    technician would dominate the ticket tests' runtime without testing anything there.
    """
    return await make_user(
        app,
        org,
        role,
        skills=skills or [],
        timezone=timezone,
        working_hours=ALWAYS if working_hours is None else working_hours,
        enrol_totp=False,
    )


async def make_device(
    app: FastAPI, owner: Person, *, name: str = "Laptop", platform: str = "linux"
) -> uuid.UUID:
    from auxilio.server.devices import service as devices

    async with app.state.sessionmaker() as db, db.begin():
        device = await devices.register_device(
            db, name=name, platform=platform, device_group=None, actor=auth.actor_for(owner.user)
        )
        return device.id


async def make_ticket(
    app: FastAPI,
    requester: Person,
    *,
    title: str = "Printer jams",
    category: str = "hardware",
    priority: str = "normal",
) -> uuid.UUID:
    from auxilio.server.tickets import service as tickets

    async with app.state.sessionmaker() as db, db.begin():
        ticket = await tickets.open_ticket(
            db,
            title=title,
            description="",
            category=category,
            priority=priority,
            actor=auth.actor_for(requester.user),
        )
        return ticket.id


async def count_rows(app: FastAPI, model: type[Any]) -> int:
    """Rows of a table, for "nothing was written" checks around a refused request."""
    from sqlalchemy import func, select

    async with app.state.sessionmaker() as db:
        return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


async def snapshot(app: FastAPI) -> dict[str, int]:
    """Row counts of everything a ticket or device request can write, audit events included."""
    from auxilio.server.audit.models import AuditEvent
    from auxilio.server.devices.models import Device
    from auxilio.server.tickets.models import Ticket, TicketComment, TimeEntry

    models: list[type[Any]] = [Ticket, TicketComment, TimeEntry, Device, AuditEvent]
    return {m.__tablename__: await count_rows(app, m) for m in models}


async def activate_policy(app: FastAPI, organisation_id: uuid.UUID, document: str) -> None:
    """Upload ``document`` as a new policy version of the organisation and activate it."""
    from auxilio.server.policies import service as policies

    async with app.state.sessionmaker() as db, db.begin():
        version = await policies.upload_version(
            db, organisation_id=organisation_id, document=document, comment="test",
            actor=Actor.system(organisation_id))  # fmt: skip
        await policies.activate_version(db, version=version, actor=Actor.system(organisation_id))
