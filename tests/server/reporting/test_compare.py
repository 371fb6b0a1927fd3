"""compare_versions on the hand-computed fixture (test_kpis_fixture.py tabulates its rows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.errors import ReportFilterInvalid
from auxilio.server.reporting import service
from auxilio.server.reporting.schemas import Period
from tests.server.reporting.rows import Fixture, at

NOW = datetime(2026, 3, 10, tzinfo=UTC)
SECOND = timedelta(seconds=1)


async def test_a_pilot_comparison_within_one_device_group(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await service.compare_versions(
        reporting_db, organisation_id=fixture_rows.organisation_id, a="v1", b="v2",
        device_group="office", now=NOW)
    assert result.device_group == "office"
    # v1 in office: K2 (day 1) and K4; its last event is S3's refusal at day 3 02:00.
    assert result.a.period == Period(start=at(1), end=at(3, 2) + SECOND)
    # v2 in office: K6 alone, opened day 4, resolved day 5 (S4 was sent, never answered).
    assert result.b.period == Period(start=at(4), end=at(5) + SECOND)
    a, b = result.a.row.kpis, result.b.row.kpis
    assert (a["tickets_created"].value, b["tickets_created"].value) == (2, 1)
    assert (a["resolution_time_mean"].value, b["resolution_time_mean"].value) == (86400, 86400)
    # K2 had 3 contacts, K4 two sessions; K6 one session.
    assert (a["first_contact_resolution"].value, b["first_contact_resolution"].value) == (0, 100)
    # S2 (score 3) on v1; nothing answered on v2.
    assert (a["csat"].value, a["csat"].n) == (0, 1)
    assert (b["csat"].value, b["csat"].n) == (None, 0)
    # (3600 + 1800 + 2 x 500) / 2 = 3200; (1200 + 500) / 1.
    assert (a["cost_per_ticket"].value, b["cost_per_ticket"].value) == (3200, 1700)
    assert result.deltas["tickets_created"] == -1
    assert result.deltas["resolution_time_mean"] == 0
    assert result.deltas["first_contact_resolution"] == 100
    assert result.deltas["cost_per_ticket"] == -1500
    assert result.deltas["sla_breaches"] == -1  # K2's late response on v1
    assert "csat" not in result.deltas  # no value on v2
    assert "survey_response_rate" not in result.deltas  # S4 was sent after v2's period


async def test_a_comparison_over_every_device(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await service.compare_versions(
        reporting_db, organisation_id=fixture_rows.organisation_id, a="v1", b="v2", now=NOW)
    # v1: K0 (day -9) .. K7 (day 6 23:00); v2: K11 (day 0) .. S6 answered at day 7 01:00.
    assert result.a.period == Period(start=at(-9), end=at(6, 23) + SECOND)
    assert result.b.period == Period(start=at(0), end=at(7, 1) + SECOND)
    a, b = result.a.row.kpis, result.b.row.kpis
    # v1 resolved K0 (5 days), K2, K4 (1 day each), K9 (2 days): 777600 / 4.
    assert a["resolution_time_mean"].value == 194400
    assert b["resolution_time_mean"].value == 57600  # as the fixture's v2 row
    assert a["csat"].value == 50  # S2 3, S5 4
    assert b["csat"].value == pytest.approx(200 / 3)  # S1 5, S6 1, S7 8 of 10
    assert result.deltas["resolution_time_mean"] == -136800
    assert result.deltas["csat"] == pytest.approx(200 / 3 - 50)
    for side in (result.a, result.b):
        for kpi, value in side.row.kpis.items():
            assert value.definition.startswith(f"{kpi}@v")


async def test_a_version_without_tickets_has_no_period_and_no_values(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await service.compare_versions(
        reporting_db, organisation_id=fixture_rows.organisation_id, a="v9", b="v2", now=NOW)
    assert result.a.period is None
    assert result.a.row.kpis["resolution_time_mean"].value is None
    assert result.a.row.kpis["tickets_created"].n == 0
    assert "resolution_time_mean" not in result.deltas


async def test_the_versions_seen_are_those_of_tickets_and_surveys(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    seen = await service.policy_versions_seen(
        reporting_db, organisation_id=fixture_rows.organisation_id)
    assert seen == ["v1", "v2"]


@pytest.mark.parametrize(("a", "b", "group", "field"), [
    ("", "v2", None, "a"),
    ("v1", "x" * 101, None, "b"),
    ("v1", "v2", "line\nbreak", "device_group"),
])
async def test_a_bad_version_or_group_is_refused(
    reporting_db: AsyncSession, fixture_rows: Fixture, a: str, b: str, group: str | None,
    field: str,
) -> None:
    with pytest.raises(ReportFilterInvalid) as caught:
        await service.compare_versions(reporting_db, organisation_id=fixture_rows.organisation_id,
                                       a=a, b=b, device_group=group)
    assert caught.value.code == "report.filter_invalid"
    assert caught.value.details == {"field": field}
