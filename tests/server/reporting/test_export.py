"""The CSV export, its round trip, the trend and the distributions on the hand-computed fixture
(test_kpis_fixture.py tabulates it)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.reporting import service
from auxilio.server.reporting.definitions import DEFINITIONS
from auxilio.server.reporting.schemas import Period, SliceBy
from tests.server.reporting.rows import Fixture, at

PERIOD = Period(start=at(0), end=at(7))
NOW = datetime(2026, 3, 10, tzinfo=UTC)


async def test_the_csv_export_reads_back_to_the_same_report(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    report = await service.kpi_report(reporting_db, organisation_id=fixture_rows.organisation_id,
                                      period=PERIOD, slice_by=SliceBy.TECHNICIAN, now=NOW)
    text = service.kpi_report_csv(report)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == (1 + len(report.rows)) * len(DEFINITIONS)
    first = lines[0]
    assert first["key"] == "" and first["kpi"] == "tickets_created"
    assert first["definition"] == "tickets_created@v1" and first["value"] == "9.0"
    alice = [line for line in lines if line["label"] == "Alice"]
    assert {line["key"] for line in alice} == {str(fixture_rows.users["A"])}
    overall, rows = service.kpi_report_from_csv(text)
    assert overall == report.overall
    assert rows == report.rows  # floats written with repr: exactly the same numbers


def test_a_file_that_is_not_a_kpi_export_is_refused() -> None:
    with pytest.raises(ValueError, match="the header must be"):
        service.kpi_report_from_csv("a,b\n1,2\n")
    header = ",".join(service.CSV_COLUMNS)
    with pytest.raises(ValueError, match="overall row"):
        service.kpi_report_from_csv(f"{header}\nx,,csat,csat@v1,percent,1.0,1,\n")


async def test_the_daily_trend_adds_up_to_the_period(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    org = fixture_rows.organisation_id
    days = await service.kpi_trend(reporting_db, organisation_id=org, period=PERIOD,
                                   bucket="day", now=NOW)
    assert [p.bucket_start for p in days] == [at(d) for d in range(7)]
    # Opened per day: K1 K11 | K2 K3 | K4 | K5 | K6 | K12 | K7
    assert [p.kpis["tickets_created"].value for p in days] == [2, 2, 1, 1, 1, 1, 1]
    # Resolved per day: K1 | K3 K9 K11 | K2 | K4 | - | K6 | -
    assert [p.kpis["tickets_resolved"].value for p in days] == [1, 3, 1, 1, 0, 1, 0]
    weeks = await service.kpi_trend(reporting_db, organisation_id=org, period=PERIOD,
                                    bucket="week", now=NOW)
    report = await service.kpi_report(reporting_db, organisation_id=org, period=PERIOD, now=NOW)
    assert len(weeks) == 1
    # The trend carries the KPIs it can bucket (service.TREND_KPIS), each equal to the report's.
    assert set(weeks[0].kpis) == set(service.TREND_KPIS)
    assert weeks[0].kpis == {k: report.overall.kpis[k] for k in service.TREND_KPIS}


async def test_the_distributions_bin_every_measured_ticket(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await service.distributions(
        reporting_db, organisation_id=fixture_rows.organisation_id, period=PERIOD)
    resolution, response = result.resolution_time, result.first_response_time
    assert resolution.edges[:-1] == list(service.DURATION_EDGES)
    assert len(resolution.edges) == len(resolution.counts) + 1
    assert resolution.definition == "resolution_time_mean@v1"
    # 14400 21600 in [4 h, 8 h); 86400 x 3, 108000, 172800 in [1 day, 3 days).
    assert resolution.counts == [0, 0, 0, 2, 0, 5, 0, 0, 0]
    # 600 in [0, 15 min); 1200 1800 1800 in [15 min, 1 h); 3600 7200 in [1 h, 4 h).
    assert response.counts == [1, 3, 2, 0, 0, 0, 0, 0, 0]
    # S1 5, S2 3, S5 4, S7 8 (of 0-10) answered in the period.
    assert result.csat_scores == {"3": 1, "4": 1, "5": 1, "8": 1}
