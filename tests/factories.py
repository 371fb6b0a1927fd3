"""Factories: organisations, users of every role (staff with real TOTP), tokens, tickets."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

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
            db, slug=slug or f"org-{next(_counter)}", name="Test organisation",
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
            db, organisation=org_row, email=email or f"user{next(_counter)}@example.test",
            display_name=f"{role.value.replace('_', ' ').title()} {next(_counter)}", role=role,
            password=PASSWORD, actor=Actor.system(org.id), skills=skills or [],
            working_hours=working_hours or {}, timezone=timezone,
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
            db, user=user, kind="login", name="factory", ttl=timedelta(hours=1),
            mfa_verified=enrol, actor=auth.actor_for(user),
        )
    return Person(user=user, token=token, totp_secret=secret)
