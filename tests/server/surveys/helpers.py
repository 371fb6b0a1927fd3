"""A person, a technician, a ticket and a policy asking for surveys; sessions that became
active and end through the real service (``end_support_session``), as the runtime ends them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.protocol.frames import EndReason, Party
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.identity.auth import actor_for
from auxilio.server.identity.models import Organisation
from auxilio.server.support_sessions import service as support_sessions
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.surveys.models import Survey
from auxilio.server.tickets import service as tickets
from auxilio.server.tickets.models import Ticket
from auxilio.server.tickets.states import TicketStatus
from tests.factories import (
    Person,
    activate_policy,
    make_org,
    make_technician,
    make_ticket,
    make_user,
)
from tests.server.support_sessions.conftest import policy_text


def survey_policy(*, delay: str = "0s", sampling: float = 1.0, scale: str = "1-5") -> str:
    return policy_text(extra=f"post_session:\n  survey: {{scale: {scale}, delay: {delay}, "
                             f"sampling: {sampling}}}\n")


@dataclass
class Scene:
    app: FastAPI
    org: Organisation
    requester: Person
    technician: Person
    ticket_id: uuid.UUID

    async def use_policy(self, text: str) -> None:
        await activate_policy(self.app, self.org.id, text)

    async def session(self, *, activated: bool = True) -> uuid.UUID:
        """A session on the ticket, active (or still awaiting consent), not ended yet."""
        async with self.app.state.sessionmaker() as db, db.begin():
            ticket = await db.get(Ticket, self.ticket_id)
            assert ticket is not None
            now = utcnow()
            row = SupportSession(
                organisation_id=self.org.id, ticket_id=ticket.id,
                requester_id=ticket.requester_id, ticket_ref=f"#{ticket.number}",
                technician_id=self.technician.user.id, mode="attended",
                state="active" if activated else "awaiting_consent", node_id="test",
                technician_e2e_key="k" * 43, policy_version="v1:test",
                activated_at=now - timedelta(minutes=5) if activated else None,
            )  # fmt: skip
            db.add(row)
            await db.flush()
            return row.id

    async def end(self, support_session_id: uuid.UUID, *, state: str = "ended") -> None:
        from auxilio.protocol.states import SupportSessionState

        async with self.app.state.sessionmaker() as db, db.begin():
            row = await support_sessions.get_for_update(db, support_session_id)
            assert row is not None
            await support_sessions.end_support_session(
                db, support_session=row, ended_by=Party.END_USER, reason=EndReason.USER_ENDED,
                actor=Actor.system(self.org.id), state=SupportSessionState(state))

    async def resolve(self, by: Person | None = None) -> None:
        async with self.app.state.sessionmaker() as db, db.begin():
            ticket = await db.get(Ticket, self.ticket_id, with_for_update=True)
            assert ticket is not None
            await tickets.transition_ticket(db, ticket=ticket, to=TicketStatus.RESOLVED,
                                            actor=actor_for((by or self.technician).user))

    async def reopen(self) -> None:
        async with self.app.state.sessionmaker() as db, db.begin():
            ticket = await db.get(Ticket, self.ticket_id, with_for_update=True)
            assert ticket is not None
            await tickets.reopen_ticket(db, ticket=ticket, actor=actor_for(self.requester.user))

    async def surveys(self) -> list[Survey]:
        from sqlalchemy import select

        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(Survey).where(Survey.ticket_id == self.ticket_id)
                                    .order_by(Survey.created_at))
            return list(rows.scalars().all())

    async def only_survey(self) -> Survey:
        found = await self.surveys()
        assert len(found) == 1, found
        return found[0]


async def make_scene(app: FastAPI, *, policy: str | None = None) -> Scene:
    org = await make_org(app)
    technician = await make_technician(app, org, skills=["hardware"])
    requester = await make_user(app, org, Role.END_USER, enrol_totp=False)
    scene = Scene(app=app, org=org, requester=requester, technician=technician,
                  ticket_id=uuid.uuid4())
    # First the policy, then the ticket: a ticket carries the version in force when opened.
    await scene.use_policy(policy or survey_policy())
    scene.ticket_id = await make_ticket(app, requester)
    return scene
