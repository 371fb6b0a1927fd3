"""Rows written straight into the tables for the KPI tests, and the hand-computed fixture.

The fixture's figures are worked out by hand in test_kpis_fixture.py; keep the two together.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from auxilio.server.db.models import Base

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def at(days: float, hours: float = 0, minutes: float = 0) -> datetime:
    """T0 + days, hours, minutes (negative days: before the period)."""
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


@dataclass
class Writer:
    conn: AsyncConnection
    organisation_id: uuid.UUID
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def _insert(self, table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", uuid.uuid4())
        await self.conn.execute(insert(Base.metadata.tables[table]).values(**values))
        row_id: uuid.UUID = values["id"]
        return row_id

    async def user(self, name: str, role: str = "end_user", *, team: str | None = None,
                   hourly_cost_cents: int | None = None) -> uuid.UUID:
        return await self._insert(
            "users", organisation_id=self.organisation_id, display_name=name, role=role,
            email=f"{name.lower()}-{secrets.token_hex(3)}@example.test", password_hash="x",
            team=team, hourly_cost_cents=hourly_cost_cents)

    async def device(self, owner: uuid.UUID, group: str | None) -> uuid.UUID:
        return await self._insert("devices", organisation_id=self.organisation_id,
                                  owner_id=owner, name="Laptop", platform="linux",
                                  device_group=group)

    async def ticket(
        self, *, requester: uuid.UUID, created: datetime, category: str = "hardware",
        priority: str = "normal", channel: str = "web", assignee: uuid.UUID | None = None,
        device: uuid.UUID | None = None, first_response: datetime | None = None,
        resolved: datetime | None = None, reopen_count: int = 0, contact_count: int = 1,
        policy_version: str | None = None,
    ) -> uuid.UUID:
        return await self._insert(
            "tickets", organisation_id=self.organisation_id, number=next(self.numbers),
            title="t", category=category, priority=priority, channel=channel,
            status="resolved" if resolved else "open", requester_id=requester,
            created_by_id=requester, assignee_id=assignee, device_id=device,
            created_at=created, updated_at=created, first_response_at=first_response,
            resolved_at=resolved, reopen_count=reopen_count, contact_count=contact_count,
            policy_version=policy_version)

    async def support_session(self, ticket: uuid.UUID, requester: uuid.UUID,
                              technician: uuid.UUID, activated: datetime | None) -> uuid.UUID:
        return await self._insert(
            "support_sessions", organisation_id=self.organisation_id, ticket_id=ticket,
            requester_id=requester, ticket_ref="t", technician_id=technician,
            mode="attended", state="ended" if activated else "refused", node_id="n",
            technician_e2e_key="k", activated_at=activated,
            created_at=activated or T0, policy_version=None)

    async def time_entry(self, ticket: uuid.UUID, technician: uuid.UUID,
                         seconds: int) -> uuid.UUID:
        return await self._insert("ticket_time_entries", organisation_id=self.organisation_id,
                                  ticket_id=ticket, technician_id=technician, seconds=seconds)

    async def survey(
        self, ticket: uuid.UUID, requester: uuid.UUID, *, technician: uuid.UUID | None,
        policy_version: str | None, sent: datetime | None, state: str,
        answered: datetime | None = None, score: int | None = None,
        scale: tuple[int, int] = (1, 5),
    ) -> uuid.UUID:
        created = sent or T0
        return await self._insert(
            "surveys", organisation_id=self.organisation_id,
            subject=f"ticket:{uuid.uuid4()}", ticket_id=ticket, requester_id=requester,
            technician_id=technician, policy_version=policy_version, scale_min=scale[0],
            scale_max=scale[1], state=state, created_at=created, send_after=created,
            sent_at=sent, expires_at=created + 14 * D, answered_at=answered, score=score,
            nonce=secrets.token_hex(16))


async def new_organisation(conn: AsyncConnection, settings: dict[str, Any]) -> uuid.UUID:
    org = uuid.uuid4()
    await conn.execute(insert(Base.metadata.tables["organisations"]).values(
        id=org, slug=f"kpi-{org.hex[:8]}", name="KPI test", kpi_settings=settings))
    return org


SETTINGS: dict[str, Any] = {
    # 3600 cents an hour: one cent a second, so costs read off the seconds.
    "cost_per_hour_by_role": {"technician": 3600},
    "cost_per_session_cents": 500,
    "sla": {"urgent": {"first_response_seconds": 3600, "resolution_seconds": 86400},
            "normal": {"resolution_seconds": 3 * 86400}},
}


@dataclass
class Fixture:
    organisation_id: uuid.UUID
    users: dict[str, uuid.UUID]
    tickets: dict[str, uuid.UUID]


async def hand_fixture(conn: AsyncConnection) -> Fixture:
    """The rows of test_kpis_fixture.py (its docstring tabulates them)."""
    org = await new_organisation(conn, SETTINGS)
    w = Writer(conn, org)
    a = await w.user("Alice", "technician", team="red", hourly_cost_cents=7200)  # 2 c/s
    b = await w.user("Bob", "technician", team="red")  # the role's 1 c/s
    c = await w.user("Carol", "supervisor", team="blue")  # no rate: 0
    r1, r2, r3 = [await w.user(n) for n in ("R1", "R2", "R3")]
    d1 = await w.device(r1, "pilot")
    d2 = await w.device(r2, "office")
    k: dict[str, uuid.UUID] = {}
    k["K0"] = await w.ticket(requester=r1, created=at(-9), resolved=at(-4), category="network",
                             assignee=a, policy_version="v1")
    k["K1"] = await w.ticket(requester=r1, created=at(0, 1), first_response=at(0, 1, 30),
                             resolved=at(0, 5), contact_count=2, assignee=a,
                             category="network", priority="urgent", device=d1,
                             policy_version="v2")
    k["K2"] = await w.ticket(requester=r2, created=at(1), first_response=at(1, 2),
                             resolved=at(2), contact_count=3, assignee=b, category="hardware",
                             channel="email", priority="urgent", device=d2,
                             policy_version="v1")
    k["K3"] = await w.ticket(requester=r3, created=at(1, 12), first_response=at(1, 12, 10),
                             resolved=at(1, 18), reopen_count=1, contact_count=2, assignee=b,
                             category="software", device=None, policy_version="v2")
    k["K4"] = await w.ticket(requester=r2, created=at(2), first_response=at(2, 1),
                             resolved=at(3), assignee=c, category="hardware", channel="phone",
                             device=d2, policy_version="v1")
    k["K5"] = await w.ticket(requester=r1, created=at(3), category="network", priority="urgent",
                             device=d1)
    k["K6"] = await w.ticket(requester=r2, created=at(4), first_response=at(4, 0, 20),
                             resolved=at(5), contact_count=2, assignee=a, category="hardware",
                             device=d2, policy_version="v2")
    k["K7"] = await w.ticket(requester=r3, created=at(6, 23), assignee=c, category="software",
                             channel="email", priority="urgent", policy_version="v1")
    k["K8"] = await w.ticket(requester=r3, created=at(-2), first_response=at(-2, 1),
                             assignee=b, category="software")
    k["K9"] = await w.ticket(requester=r1, created=at(-1), first_response=at(-1, 0, 30),
                             resolved=at(1), contact_count=2, assignee=a, category="network",
                             device=d1, policy_version="v1")
    k["K10"] = await w.ticket(requester=r1, created=at(7), priority="urgent", device=d1)
    k["K11"] = await w.ticket(requester=r1, created=at(0), first_response=at(0, 0, 30),
                              resolved=at(1, 6), contact_count=2, assignee=c,
                              category="network", channel="phone", priority="urgent",
                              device=d1, policy_version="v2")
    k["K12"] = await w.ticket(requester=r3, created=at(5, 12), category="network",
                              policy_version="v2")
    k["K13"] = await w.ticket(requester=r3, created=at(-59), resolved=at(-40),
                              category="network")
    # Support sessions: K1 one active; K4 two; K6 one active, one never active; K5 one.
    await w.support_session(k["K1"], r1, a, at(0, 2))
    await w.support_session(k["K4"], r2, c, at(2, 2))
    await w.support_session(k["K4"], r2, c, at(2, 5))
    await w.support_session(k["K6"], r2, a, at(4, 1))
    await w.support_session(k["K6"], r2, a, None)
    await w.support_session(k["K5"], r1, a, at(3, 1))
    # Time entries.
    await w.time_entry(k["K1"], a, 1800)
    await w.time_entry(k["K2"], b, 3600)
    await w.time_entry(k["K4"], c, 3600)
    await w.time_entry(k["K4"], b, 1800)
    await w.time_entry(k["K6"], a, 600)
    await w.time_entry(k["K5"], a, 3600)
    # Surveys S1..S7.
    await w.survey(k["K1"], r1, technician=a, policy_version="v2", sent=at(0, 6),
                   state="answered", answered=at(0, 7), score=5)
    await w.survey(k["K2"], r2, technician=b, policy_version="v1", sent=at(2, 1),
                   state="answered", answered=at(2, 2), score=3)
    await w.survey(k["K4"], r2, technician=c, policy_version="v1", sent=at(3, 1),
                   state="declined", answered=at(3, 2))
    await w.survey(k["K6"], r2, technician=a, policy_version="v2", sent=at(5, 1), state="sent")
    await w.survey(k["K9"], r1, technician=a, policy_version="v1", sent=at(-1, 12),
                   state="answered", answered=at(1), score=4)
    await w.survey(k["K11"], r1, technician=c, policy_version="v2", sent=at(6, 12),
                   state="answered", answered=at(7, 1), score=1)
    await w.survey(k["K3"], r3, technician=b, policy_version="v2", sent=at(1, 19),
                   state="answered", answered=at(1, 20), score=8, scale=(0, 10))
    return Fixture(org, {"A": a, "B": b, "C": c, "R1": r1, "R2": r2, "R3": r3}, k)
