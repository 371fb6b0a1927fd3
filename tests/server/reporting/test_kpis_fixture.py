"""Every KPI on a small fixture whose figures were worked out by hand (tests/server/reporting/
rows.py writes it). Period: [2026-03-01, 2026-03-08), now 2026-03-10 (after the end).

Technicians: A team red, own rate 7200 c/h (2 c/s); B red, the technician role's 3600 c/h
(1 c/s); C blue, a supervisor (no rate: 0). Per session 500 c. SLA: urgent first response 1 h
and resolution 1 day; normal resolution 3 days. Day d hh:mm below is 2026-03-(1+d).

 tk  opened     1st resp   resolved   prio   who  cat  dev     pv  notes
 K0  -9         -          -4         normal A   net  -       v1  (before the period)
 K1  0 01:00    +1800 s    0 05:00    urgent A   net  pilot   v2  2 contacts, 1 session
 K2  1 00:00    +7200 s    2 00:00    urgent B   hw   office  v1  3 contacts
 K3  1 12:00    +600 s     1 18:00    normal B   sw   -       v2  reopened once
 K4  2 00:00    +3600 s    3 00:00    normal C   hw   office  v1  2 active sessions
 K5  3 00:00    -          -          urgent -   net  pilot   -   1 session (open)
 K6  4 00:00    +1200 s    5 00:00    normal A   hw   office  v2  1 active + 1 refused session
 K7  6 23:00    -          -          urgent C   sw   -       v1
 K8  -2         -1 +1 h    -          normal B   sw   -       -
 K9  -1         -          1 00:00    normal A   net  pilot   v1
 K10 7 00:00    -          -          urgent -   hw   pilot   -   opened at the end: out
 K11 0 00:00    +1800 s    1 06:00    urgent C   net  pilot   v2
 K12 5 12:00    -          -          normal -   net  -       v2
 K13 -59        -          -40        normal -   net  -       -
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.reporting import service
from auxilio.server.reporting.definitions import DEFINITIONS
from auxilio.server.reporting.schemas import KpiFilters, KpiReport, KpiRow, Period, SliceBy
from tests.server.reporting.rows import Fixture, at

PERIOD = Period(start=at(0), end=at(7))
NOW = datetime(2026, 3, 10, tzinfo=UTC)


def figures(row: KpiRow) -> dict[str, tuple[float | None, int]]:
    return {k: (v.value, v.n) for k, v in row.kpis.items()}


def check(row: KpiRow, expected: dict[str, tuple[float | None, int]]) -> None:
    got = figures(row)
    for kpi, (value, n) in expected.items():
        gv, gn = got[kpi]
        assert gn == n, (kpi, got[kpi], (value, n))
        if value is None:
            assert gv is None, (kpi, gv)
        else:
            assert gv == pytest.approx(value, rel=1e-9), (kpi, gv, value)


OVERALL = {
    # Opened in the period: K1 K2 K3 K4 K5 K6 K7 K11 K12 (K10 opens at the end).
    "tickets_created": (9, 9),
    # Resolved in the period: K1 K2 K3 K4 K6 K9 K11.
    "tickets_resolved": (7, 7),
    # 14400 + 86400 + 21600 + 86400 + 86400 + 172800 + 108000 = 576000; / 7
    "resolution_time_mean": (576000 / 7, 7),
    # 14400 21600 86400 [86400] 86400 108000 172800
    "resolution_time_median": (86400, 7),
    # K1 1800, K2 7200, K3 600, K4 3600, K6 1200, K11 1800 = 16200; / 6 = 2700
    "first_response_time_mean": (2700, 6),
    # 600 1200 [1800] 1800 3600 7200: the lower middle
    "first_response_time_median": (1800, 6),
    # Answered in the period: S1 5 (yes), S2 3 (no), S5 4 (yes), S7 8 of 0-10 (yes): 3 / 4.
    # S6 was answered after the end; S3 declined.
    "csat": (75.0, 4),
    # Sent in the period: S1 S2 S3 S4 S6 S7; answered: S1 S2 S6 S7 -> 4 / 6.
    "survey_response_rate": (400 / 6, 6),
    # K1 (1 session), K6 (1 active), K9, K11; not K2 (3 contacts), K3 (reopened), K4 (2
    # sessions): 4 / 7.
    "first_contact_resolution": (400 / 7, 7),
    # K1 (K0 resolved 4 days before), K5 (K1, K9, K11 before), K6 (K4), K7 (K3), K11 (K0);
    # not K2, K3, K12 (nothing before), K4 (K2 resolved at the very instant K4 opened): 5 / 9.
    "repeat_incidents": (500 / 9, 9),
    # Time: K1 1800 s x 2 c = 3600, K2 3600 x 1 = 3600, K4 3600 x 0 + 1800 x 1 = 1800, K6 600 x 2
    # = 1200 -> 10200 c (K5's entry: not resolved). Sessions K1 1 + K4 2 + K6 1 = 4 x 500 =
    # 2000 c. (10200 + 2000) / 7.
    "cost_per_ticket": (12200 / 7, 7),
    # Open at the end: K5 K7 K8 K12.
    "backlog": (4, 4),
    # All 9 opened have a target. K2 responded after 2 h (> 1 h); K5 never responded, its
    # deadline (day 3 01:00) passed; K11 resolved after 30 h (> 1 day). Not K2's resolution (1
    # day exactly), nor K7 (its response deadline is the period's end itself).
    "sla_breaches": (3, 9),
}


async def report(db: AsyncSession, f: Fixture, **kwargs: object) -> KpiReport:
    return await service.kpi_report(db, organisation_id=f.organisation_id, period=PERIOD,
                                    now=NOW, **kwargs)  # type: ignore[arg-type]


async def test_every_kpi_matches_the_hand_computed_figures(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await report(reporting_db, fixture_rows)
    assert set(result.overall.kpis) == set(DEFINITIONS)
    check(result.overall, OVERALL)
    for kpi, value in result.overall.kpis.items():
        assert value.definition == DEFINITIONS[kpi].ref
    assert result.rows == []


async def test_the_team_slice_matches_the_hand_computed_figures(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await report(reporting_db, fixture_rows, slice_by=SliceBy.TEAM)
    check(result.overall, OVERALL)  # the rows add up to the same overall figures
    rows = {row.key: row for row in result.rows}
    assert list(rows) == ["blue", "red", "unknown"]
    check(rows["red"], {
        # A: K1 K6 K9; B: K2 K3 (K8 before the period).
        "tickets_created": (4, 4), "tickets_resolved": (5, 5),
        # 14400 + 86400 + 21600 + 86400 + 172800 = 381600; / 5
        "resolution_time_mean": (76320, 5), "resolution_time_median": (86400, 5),
        # K1 1800, K2 7200, K3 600, K6 1200: 10800 / 4; 600 [1200] 1800 7200
        "first_response_time_mean": (2700, 4), "first_response_time_median": (1200, 4),
        "first_contact_resolution": (60.0, 5),  # K1 K6 K9
        "repeat_incidents": (50.0, 4),  # K1 K6
        "backlog": (1, 1),  # K8
        "sla_breaches": (1, 4),  # K2
        # 3600 + 3600 + 1200 time, K1 + K6 sessions 1000: 9400 / 5
        "cost_per_ticket": (1880, 5),
        # Surveys of A and B: S1 5, S2 3, S5 4, S7 8/10 -> 3 / 4; sent S1 S2 S4 S7, answered 3.
        "csat": (75.0, 4), "survey_response_rate": (75.0, 4),
    })
    check(rows["blue"], {
        "tickets_created": (3, 3), "tickets_resolved": (2, 2),  # K4 K7 K11; K4 K11
        "resolution_time_mean": (97200, 2), "resolution_time_median": (86400, 2),
        "first_response_time_mean": (2700, 2), "first_response_time_median": (1800, 2),
        "first_contact_resolution": (50.0, 2),  # K11
        "repeat_incidents": (200 / 3, 3),  # K7 K11
        "backlog": (1, 1), "sla_breaches": (1, 3),  # K7; K11
        # K4: B's 1800 s x 1 c + C's 3600 x 0, 2 sessions 1000: 2800 / 2
        "cost_per_ticket": (1400, 2),
        "csat": (None, 0),  # C's S3 declined, S6 answered after the end
        "survey_response_rate": (50.0, 2),
    })
    check(rows["unknown"], {  # no assignee: K5 K12
        "tickets_created": (2, 2), "tickets_resolved": (0, 0),
        "resolution_time_mean": (None, 0), "resolution_time_median": (None, 0),
        "cost_per_ticket": (None, 0), "repeat_incidents": (50.0, 2),
        "backlog": (2, 2), "sla_breaches": (1, 2), "csat": (None, 0),
    })


async def test_the_policy_version_slice_uses_the_surveys_own_version(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await report(reporting_db, fixture_rows, slice_by=SliceBy.POLICY_VERSION)
    rows = {row.key: row for row in result.rows}
    assert list(rows) == ["unknown", "v1", "v2"]
    check(rows["v2"], {
        "tickets_created": (5, 5), "tickets_resolved": (4, 4),  # K1 K3 K6 K11 K12
        # 14400 21600 86400 108000: 230400 / 4; lower middle 21600
        "resolution_time_mean": (57600, 4), "resolution_time_median": (21600, 4),
        "first_response_time_mean": (1350, 4), "first_response_time_median": (1200, 4),
        "first_contact_resolution": (75.0, 4), "repeat_incidents": (60.0, 5),
        "cost_per_ticket": (1450, 4),  # 3600 + 1200 + 1000 sessions
        "csat": (100.0, 2),  # S1 5, S7 8/10
        "survey_response_rate": (75.0, 4),  # S1 S4 S6 S7 sent, S1 S6 S7 answered
    })
    check(rows["v1"], {
        "tickets_created": (3, 3), "tickets_resolved": (3, 3),  # K2 K4 K7; K2 K4 K9
        "resolution_time_mean": (115200, 3), "resolution_time_median": (86400, 3),
        "first_response_time_median": (3600, 2), "first_contact_resolution": (100 / 3, 3),
        "cost_per_ticket": (6400 / 3, 3), "csat": (50.0, 2), "survey_response_rate": (50.0, 2),
    })
    check(rows["unknown"], {"tickets_created": (1, 1), "backlog": (2, 2),
                            "repeat_incidents": (100.0, 1), "sla_breaches": (1, 1)})


async def test_a_device_group_filter_narrows_tickets_and_surveys(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await report(reporting_db, fixture_rows,
                          filters=KpiFilters(device_group="pilot"))
    check(result.overall, {
        "tickets_created": (3, 3),  # K1 K5 K11
        # K1 14400, K9 172800, K11 108000
        "tickets_resolved": (3, 3), "resolution_time_mean": (98400, 3),
        "resolution_time_median": (108000, 3),
        "csat": (100.0, 2),  # S1, S5
        "survey_response_rate": (100.0, 2),  # S1, S6
    })


async def test_the_technician_slice_names_each_technician(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    result = await report(reporting_db, fixture_rows, slice_by=SliceBy.TECHNICIAN)
    rows = {row.key: row for row in result.rows}
    alice = rows[str(fixture_rows.users["A"])]
    assert alice.label == "Alice"
    assert rows["unknown"].label is None
    check(alice, {"tickets_created": (2, 2), "tickets_resolved": (3, 3),
                  # K1 3600 + K6 1200 + 2 sessions 1000: 5800 / 3 (K1 K6 K9)
                  "cost_per_ticket": (5800 / 3, 3),
                  "csat": (100.0, 2)})  # S1, S5


async def test_a_filter_on_a_technician_with_nothing_gives_empty_values(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    nobody = fixture_rows.users["R1"]  # a requester: no ticket is assigned to them
    result = await report(reporting_db, fixture_rows,
                          filters=KpiFilters(technician_id=nobody))
    check(result.overall, {
        "tickets_created": (0, 0), "tickets_resolved": (0, 0), "backlog": (0, 0),
        "resolution_time_mean": (None, 0), "resolution_time_median": (None, 0),
        "first_response_time_median": (None, 0), "csat": (None, 0),
        "survey_response_rate": (None, 0), "first_contact_resolution": (None, 0),
        "repeat_incidents": (None, 0), "cost_per_ticket": (None, 0), "sla_breaches": (0, 0),
    })


async def test_backlog_and_sla_stop_at_now_inside_the_period(
    reporting_db: AsyncSession, fixture_rows: Fixture
) -> None:
    """now = day 3 00:30: K5 (opened day 3 00:00) is in the backlog, its 1 h response target
    has not passed yet; K2's late response still counts, K11's late resolution too."""
    result = await service.kpi_report(
        reporting_db, organisation_id=fixture_rows.organisation_id, period=PERIOD,
        now=at(3, 0, 30))
    # Open at day 3 00:30: K5, K8 (never resolved), K4 is resolved at day 3 00:00, ... K7 and
    # K12 not opened yet (the rows exist, but they were opened after "now").
    check(result.overall, {"backlog": (2, 2), "sla_breaches": (2, 9)})
