"""The KPIs where there is little or nothing to measure, and inputs the schemas refuse."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from auxilio.server.reporting import service
from auxilio.server.reporting.schemas import KpiFilters, KpiSettings, Period, SliceBy
from tests.server.reporting.rows import T0, Fixture, Writer, at, new_organisation


async def test_an_empty_period_counts_zero_and_measures_nothing(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    """A year before the fixture: nothing opened, nothing open."""
    period = Period(start=T0 - timedelta(days=400), end=T0 - timedelta(days=300))
    result = await service.kpi_report(reporting_db, organisation_id=fixture_rows.organisation_id,
                                      period=period, slice_by=SliceBy.TEAM, now=T0)
    assert result.rows == []  # no slice has anything to show
    kpis = result.overall.kpis
    for kpi in ("tickets_created", "tickets_resolved", "backlog", "sla_breaches"):
        assert (kpis[kpi].value, kpis[kpi].n) == (0, 0), kpi
    for kpi in ("resolution_time_mean", "resolution_time_median", "first_response_time_mean",
                "first_response_time_median", "csat", "survey_response_rate",
                "first_contact_resolution", "repeat_incidents", "cost_per_ticket"):
        assert (kpis[kpi].value, kpis[kpi].n) == (None, 0), kpi


async def test_a_slice_value_no_ticket_has_gives_no_row(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    period = Period(start=at(0), end=at(7))
    result = await service.kpi_report(
        reporting_db, organisation_id=fixture_rows.organisation_id, period=period,
        filters=KpiFilters(category="no-such-category"), slice_by=SliceBy.CHANNEL, now=at(9))
    assert result.rows == []
    assert result.overall.kpis["tickets_created"].n == 0


async def test_surveys_never_answered_give_no_csat_and_a_zero_response_rate(
    engine: AsyncEngine, reporting_db: AsyncSession
) -> None:
    async with engine.begin() as conn:
        org = await new_organisation(conn, {})
        w = Writer(conn, org)
        person = await w.user("Pat")
        tech = await w.user("Tess", "technician")
        ticket = await w.ticket(requester=person, created=at(0), resolved=at(0, 2),
                                assignee=tech)
        for state in ("sent", "declined", "expired"):
            await w.survey(ticket, person, technician=tech, policy_version=None,
                           sent=at(0, 3), state=state,
                           answered=at(0, 4) if state == "declined" else None)
    result = await service.kpi_report(reporting_db, organisation_id=org,
                                      period=Period(start=at(0), end=at(1)), now=at(2))
    kpis = result.overall.kpis
    assert (kpis["csat"].value, kpis["csat"].n) == (None, 0)
    assert (kpis["survey_response_rate"].value, kpis["survey_response_rate"].n) == (0, 3)
    # No SLA target and no cost rate in this organisation's settings.
    assert (kpis["sla_breaches"].value, kpis["sla_breaches"].note) == (None, "not_configured")
    assert (kpis["cost_per_ticket"].value, kpis["cost_per_ticket"].n) == (0, 1)


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError, match="end must come after its start"):
        Period(start=at(1), end=at(1))
    with pytest.raises(ValidationError, match="end must come after its start"):
        Period(start=at(1), end=at(0))


def test_a_period_in_local_time_without_an_offset_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Period(start=datetime(2026, 3, 1), end=at(1))  # noqa: DTZ001 -- the point of the test


def test_unknown_filters_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        KpiFilters.model_validate({"colour": "red"})
    with pytest.raises(ValidationError):
        KpiFilters(category="")
    with pytest.raises(ValidationError):
        KpiSettings.model_validate({"cost_per_session_cents": -1})
    with pytest.raises(ValidationError):
        KpiSettings.model_validate({"sla": {"urgent": {"first_response_seconds": 0}}})
