"""Generated activity (demo.activity) and ``auxilio admin generate-activity``."""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner

from auxilio.cli import app as cli
from auxilio.policy import load_template
from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.demo import activity
from auxilio.server.demo.activity import (
    PILOT_GROUP,
    DemoInvalid,
    DemoOrganisationExists,
    generate_activity,
)
from auxilio.server.devices.models import Device
from auxilio.server.identity.models import Organisation, User
from auxilio.server.policies.models import PolicyPilot, PolicyVersion
from auxilio.server.policies.service import _label
from auxilio.server.reporting.schemas import KpiSettings
from auxilio.server.settings import Settings, load_settings
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.surveys.models import Survey
from auxilio.server.tickets.models import Ticket, TimeEntry

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 10
PER_DAY = 30


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    made = create_engine(settings)
    yield made
    await made.dispose()


async def _count(db: AsyncSession, model: Any, organisation_id: uuid.UUID) -> int:
    return int(
        (
            await db.execute(
                select(func.count()).select_from(model).where(
                    model.organisation_id == organisation_id
                )
            )
        ).scalar_one()
    )


async def _tickets(db: AsyncSession, organisation_id: uuid.UUID) -> list[Ticket]:
    rows = await db.execute(
        select(Ticket).where(Ticket.organisation_id == organisation_id).order_by(Ticket.number)
    )
    return list(rows.scalars())


def _ticket_facts(ticket: Ticket) -> tuple[Any, ...]:
    return (
        ticket.number, ticket.title, ticket.category, ticket.priority, ticket.channel,
        ticket.status, ticket.created_at, ticket.first_response_at, ticket.resolved_at,
        ticket.contact_count, ticket.reopen_count, ticket.time_spent_seconds,
        ticket.policy_version,
    )


async def test_the_counts_match_the_summary(engine: AsyncEngine) -> None:
    summary = await generate_activity(engine, start=START, days=DAYS, tickets_per_day=PER_DAY)
    assert summary.tickets == DAYS * PER_DAY
    assert summary.end == START + timedelta(days=DAYS)
    org = summary.organisation_id
    async with create_sessionmaker(engine)() as db:
        assert await _count(db, Ticket, org) == summary.tickets
        assert await _count(db, SupportSession, org) == summary.sessions
        assert await _count(db, Survey, org) == summary.surveys
        assert await _count(db, TimeEntry, org) == summary.time_entries
        organisation = await db.get(Organisation, org)
        assert organisation is not None
        assert organisation.slug == summary.slug == activity.demo_slug(START, 1)
        assert organisation.ticket_counter == summary.tickets
        KpiSettings.model_validate(organisation.kpi_settings)
        staff = (await db.execute(
            select(User).where(User.organisation_id == org, User.role != "end_user")
        )).scalars().all()
    assert summary.technicians == len(staff) == 12
    assert {u.team for u in staff} == {"service-desk", "workplace", "infrastructure"}
    assert any(u.hourly_cost_cents is None for u in staff)
    assert any(u.hourly_cost_cents is not None for u in staff)
    # Roughly what a service desk looks like: most sessions have a survey, many tickets a session.
    assert 0.3 <= summary.sessions / summary.tickets <= 0.5
    assert 0.55 <= summary.surveys / summary.sessions <= 0.8
    assert 1 <= summary.time_entries / summary.tickets <= 2.5


async def test_the_same_seed_makes_the_same_activity(engine: AsyncEngine) -> None:
    first = await generate_activity(
        engine, start=START, days=3, tickets_per_day=20, seed=7, slug="demo-a"
    )
    second = await generate_activity(
        engine, start=START, days=3, tickets_per_day=20, seed=7, slug="demo-b"
    )
    other = await generate_activity(
        engine, start=START, days=3, tickets_per_day=20, seed=8, slug="demo-c"
    )
    counts = [(s.tickets, s.sessions, s.surveys, s.time_entries) for s in (first, second)]
    assert counts[0] == counts[1]
    async with create_sessionmaker(engine)() as db:
        a = await _tickets(db, first.organisation_id)
        b = await _tickets(db, second.organisation_id)
        c = await _tickets(db, other.organisation_id)
    assert [_ticket_facts(t) for t in a] == [_ticket_facts(t) for t in b]
    assert a[0].id != b[0].id  # new rows, not copies: both organisations live side by side
    assert [_ticket_facts(t) for t in a] != [_ticket_facts(t) for t in c]


async def test_version_two_is_piloted_on_one_group_from_half_way(engine: AsyncEngine) -> None:
    summary = await generate_activity(engine, start=START, days=DAYS, tickets_per_day=PER_DAY)
    org = summary.organisation_id
    async with create_sessionmaker(engine)() as db:
        versions = (await db.execute(
            select(PolicyVersion).where(PolicyVersion.organisation_id == org)
            .order_by(PolicyVersion.number)
        )).scalars().all()
        pilots = (await db.execute(
            select(PolicyPilot).where(PolicyPilot.organisation_id == org)
        )).scalars().all()
        groups = {
            device_id: group for device_id, group in await db.execute(
                select(Device.id, Device.device_group).where(Device.organisation_id == org)
            )
        }
        tickets = await _tickets(db, org)
        sessions = (await db.execute(
            select(SupportSession).where(SupportSession.organisation_id == org)
        )).scalars().all()
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].document == load_template("software-company")
    for version in versions:
        assert version.sha256 == hashlib.sha256(version.document.encode()).hexdigest()
    labels = [_label(v.number, v.sha256) for v in versions]
    assert summary.policy_versions == labels
    assert [v.is_active for v in versions] == [True, False]
    assert len(pilots) == 1
    pilot = pilots[0]
    assert pilot.policy_version_id == versions[1].id
    assert pilot.device_group == summary.pilot_group == PILOT_GROUP
    assert pilot.starts_at == START + timedelta(days=DAYS / 2)
    assert set(groups.values()) == {"office-laptops", "field-laptops", "lab-workstations"}
    for ticket in tickets:
        piloted = (
            ticket.device_id is not None and groups[ticket.device_id] == PILOT_GROUP
            and ticket.created_at >= pilot.starts_at
        )
        assert ticket.policy_version == labels[1 if piloted else 0], ticket.number
    by_ticket = {t.id: t for t in tickets}
    assert all(s.policy_version == by_ticket[s.ticket_id].policy_version for s in sessions)
    assert any(t.policy_version == labels[1] for t in tickets)


async def test_the_pilot_group_resolves_faster_under_version_two(engine: AsyncEngine) -> None:
    summary = await generate_activity(engine, start=START, days=20, tickets_per_day=60)
    async with create_sessionmaker(engine)() as db:
        tickets = await _tickets(db, summary.organisation_id)

    def hours(label: str) -> float:
        return statistics.median(
            (t.resolved_at - t.created_at).total_seconds() / 3600
            for t in tickets
            if t.resolved_at is not None and t.policy_version == label
            and t.priority == "normal"
        )

    assert hours(summary.policy_versions[1]) < hours(summary.policy_versions[0])


async def test_every_row_reads_back_in_order_and_in_the_period(engine: AsyncEngine) -> None:
    summary = await generate_activity(engine, start=START, days=DAYS, tickets_per_day=PER_DAY)
    org, end = summary.organisation_id, summary.end
    async with create_sessionmaker(engine)() as db:
        tickets = await _tickets(db, org)
        entries = (await db.execute(
            select(TimeEntry).where(TimeEntry.organisation_id == org)
        )).scalars().all()
        sessions = (await db.execute(
            select(SupportSession).where(SupportSession.organisation_id == org)
        )).scalars().all()
        surveys = (await db.execute(
            select(Survey).where(Survey.organisation_id == org)
        )).scalars().all()
        requesters = set((await db.execute(
            select(User.id).where(User.organisation_id == org, User.role == "end_user")
        )).scalars())
    assert [t.number for t in tickets] == list(range(1, summary.tickets + 1))
    resolved = [t for t in tickets if t.resolved_at is not None]
    assert 0.75 <= len(resolved) / len(tickets) <= 0.97
    assert any(t.reopen_count > 0 for t in resolved)
    assert {t.contact_count for t in tickets} <= {1, 2, 3, 4, 5}
    assert {t.category for t in tickets} == {"software", "account", "hardware", "network",
                                              "other"}
    assert {t.channel for t in tickets} == {"web", "email", "phone", "chat"}
    assert {t.priority for t in tickets} == {"low", "normal", "high", "critical"}
    # Some people come back: fewer requesters than tickets, and several with more than one.
    asked = [t.requester_id for t in tickets]
    assert set(asked) <= requesters
    assert sum(1 for r in set(asked) if asked.count(r) > 1) >= 20
    spent: dict[uuid.UUID, int] = {}
    for entry in entries:
        spent[entry.ticket_id] = spent.get(entry.ticket_id, 0) + entry.seconds
        assert START <= entry.created_at < end
    for ticket in tickets:
        assert START <= ticket.created_at < end
        assert ticket.time_spent_seconds == spent.get(ticket.id, 0)
        if ticket.first_response_at is not None:
            assert ticket.created_at <= ticket.first_response_at < end
        if ticket.resolved_at is not None:
            assert ticket.first_response_at is not None
            assert ticket.first_response_at <= ticket.resolved_at < end
            assert ticket.status in ("resolved", "closed")
        else:
            assert ticket.status in ("new", "open", "pending")
    by_ticket = {t.id: t for t in tickets}
    for s in sessions:
        ticket = by_ticket[s.ticket_id]
        assert s.state == "ended" and s.activated_at is not None and s.ended_at is not None
        assert s.technician_id == ticket.assignee_id and s.requester_id == ticket.requester_id
        assert ticket.created_at <= s.created_at <= s.activated_at < s.ended_at < end
        assert s.mode == "attended" and s.granted_capabilities
    states = {v.state for v in surveys}
    assert {"answered", "declined"} <= states <= {"answered", "declined", "expired", "sent"}
    for survey in surveys:
        assert survey.subject == f"session:{survey.support_session_id}"
        if survey.state == "answered":
            assert survey.score is not None and 1 <= survey.score <= 5
            assert survey.answered_at is not None and survey.answered_at < survey.expires_at
        else:
            assert survey.score is None
    assert len({v.nonce for v in surveys}) == len(surveys)


async def test_it_writes_into_a_given_organisation_after_its_tickets(
    engine: AsyncEngine,
) -> None:
    first = await generate_activity(engine, start=START, days=2, tickets_per_day=10)
    again = await generate_activity(
        engine, organisation_id=first.organisation_id, start=START + timedelta(days=2), days=2,
        tickets_per_day=10,
    )
    assert again.organisation_id == first.organisation_id
    async with create_sessionmaker(engine)() as db:
        tickets = await _tickets(db, first.organisation_id)
        organisation = await db.get(Organisation, first.organisation_id)
        versions = (await db.execute(
            select(PolicyVersion.number, PolicyVersion.is_active)
            .where(PolicyVersion.organisation_id == first.organisation_id)
            .order_by(PolicyVersion.number)
        )).all()
    assert [t.number for t in tickets] == list(range(1, 41))
    assert organisation is not None and organisation.ticket_counter == 40
    # The organisation's active policy stays the one it had.
    assert [tuple(v) for v in versions] == [(1, True), (2, False), (3, False), (4, False)]


async def test_it_refuses_an_organisation_it_generated_before(engine: AsyncEngine) -> None:
    await generate_activity(engine, start=START, days=1, tickets_per_day=5)
    with pytest.raises(DemoOrganisationExists) as refused:
        await generate_activity(engine, start=START, days=1, tickets_per_day=5)
    assert refused.value.code == "demo.organisation_exists"
    async with create_sessionmaker(engine)() as db:
        assert (await db.execute(select(func.count()).select_from(Ticket))).scalar_one() == 5


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start": datetime(2026, 11, 1)}, "start"),  # noqa: DTZ001 -- the naive time refused
        ({"days": 0}, "days"),
        ({"tickets_per_day": 0}, "tickets_per_day"),
    ],
)
async def test_it_refuses_bad_sizes_before_writing(
    engine: AsyncEngine, changes: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"start": START, "days": 1, "tickets_per_day": 5, **changes}
    with pytest.raises(DemoInvalid) as refused:
        await generate_activity(engine, **arguments)
    assert refused.value.code == "demo.invalid"
    assert refused.value.details["field"] == field
    async with create_sessionmaker(engine)() as db:
        assert (await db.execute(select(func.count()).select_from(Organisation))).scalar_one() == 0


# ---- the CLI ---------------------------------------------------------------------------------

runner = CliRunner()


def _invoke(data: Path, *args: str) -> Any:
    return runner.invoke(cli, ["admin", "generate-activity", *args, "--data-dir", str(data)])


async def _cli_state(data: Path) -> tuple[int, list[tuple[str, str]], list[str]]:
    engine = create_engine(load_settings(data_dir=data))
    try:
        async with create_sessionmaker(engine)() as db:
            tickets = (await db.execute(select(func.count()).select_from(Ticket))).scalar_one()
            admins = (await db.execute(
                select(User.email, User.role).where(User.role == "admin")
            )).all()
            actions = list((await db.execute(select(AuditEvent.action))).scalars())
    finally:
        await engine.dispose()
    return int(tickets), [(email, role) for email, role in admins], actions


def test_the_command_fills_a_month_and_refuses_a_second_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = _invoke(data, "--month", "2026-02", "--tickets-per-day", "3", "--seed", "4")
    assert made.exit_code == 0, made.output
    assert "generated organisation demo-2026-02-01-seed4" in made.output
    assert "84 tickets" in made.output  # 28 days of February 2026
    assert "admin@demo-2026-02-01-seed4.example with the password " in made.output
    assert "otpauth://totp/" in made.output
    tickets, admins, actions = asyncio.run(_cli_state(data))
    assert tickets == 84
    assert admins == [("admin@demo-2026-02-01-seed4.example", "admin")]
    # The generated rows are not audited; the admin the command made is.
    assert sorted(actions) == ["identity:totp:enrolment_started", "identity:user:created"]

    again = _invoke(data, "--month", "2026-02", "--tickets-per-day", "3", "--seed", "4")
    assert again.exit_code == 1
    assert "demo.organisation_exists" in again.output
    assert asyncio.run(_cli_state(data))[0] == 84


def test_the_command_refuses_a_month_it_cannot_read(tmp_path: Path) -> None:
    refused = _invoke(tmp_path / "data", "--month", "November", "--tickets-per-day", "3")
    assert refused.exit_code == 1
    assert "demo.invalid" in refused.output
