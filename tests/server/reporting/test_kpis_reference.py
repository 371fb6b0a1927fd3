"""kpi_report against reference.py's plain Python computation, on generated activity
(src/auxilio/server/demo/activity.py): several periods, every slice, filters, both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from auxilio.server.demo.activity import ActivitySummary, generate_activity
from auxilio.server.reporting import service
from auxilio.server.reporting.definitions import DEFINITIONS, Unit
from auxilio.server.reporting.schemas import KpiFilters, KpiReport, Period, SliceBy
from tests.server.reporting import reference

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 45
PER_DAY = 60  # 2,700 tickets with their sessions, surveys and time entries


def assert_same(report: KpiReport, expected: dict[str | None, reference.Figures]) -> None:
    got = {None: report.overall, **{row.key: row for row in report.rows}}
    assert set(got) == set(expected), (sorted(map(str, got)), sorted(map(str, expected)))
    for key, row in got.items():
        assert set(row.kpis) == set(DEFINITIONS)
        for kpi, value in row.kpis.items():
            want, n = expected[key][kpi]
            where = (key, kpi, value.value, value.n, want, n)
            assert value.n == n, where
            if want is None:
                assert value.value is None, where
            elif DEFINITIONS[kpi].unit in (Unit.SECONDS, Unit.CENTS):
                # SQLite's date functions keep milliseconds; the generator writes microseconds.
                assert value.value == pytest.approx(want, rel=1e-9, abs=0.002), where
            else:
                assert value.value == pytest.approx(want, rel=1e-9), where


@pytest.fixture
async def activity(engine: AsyncEngine) -> ActivitySummary:
    return await generate_activity(engine, start=START, days=DAYS, tickets_per_day=PER_DAY,
                                   seed=7)


async def test_every_slice_agrees_with_the_plain_computation(
    engine: AsyncEngine, activity: ActivitySummary
) -> None:
    org = activity.organisation_id
    after = START + timedelta(days=DAYS + 5)
    month = Period(start=START + timedelta(days=10), end=START + timedelta(days=40))
    async with AsyncSession(engine) as db:
        raw = await reference.load(db, org)
        assert len(raw.tickets) == DAYS * PER_DAY
        assert raw.sessions and raw.surveys and raw.time_entries
        for slice_by in (None, *SliceBy):
            report = await service.kpi_report(db, organisation_id=org, period=month,
                                              slice_by=slice_by, now=after)
            assert_same(report, reference.compute(raw, period=month, filters=KpiFilters(),
                                                  slice_by=slice_by, now=after))


async def test_filters_and_a_now_inside_the_period_agree_with_the_plain_computation(
    engine: AsyncEngine, activity: ActivitySummary
) -> None:
    org = activity.organisation_id
    pilot = activity.pilot_group
    v1, v2 = activity.policy_versions
    week = Period(start=START + timedelta(days=20), end=START + timedelta(days=27))
    inside = START + timedelta(days=24, hours=13)
    everything = Period(start=START, end=START + timedelta(days=DAYS))
    cases = [
        (week, KpiFilters(team="service-desk"), SliceBy.CATEGORY, inside),
        (week, KpiFilters(), SliceBy.PRIORITY, inside),
        (everything, KpiFilters(device_group=pilot, policy_version=v2), None, everything.end),
        (everything, KpiFilters(device_group=pilot), SliceBy.POLICY_VERSION, everything.end),
        (everything, KpiFilters(policy_version=v1, channel="email"), SliceBy.TEAM,
         everything.end),
    ]
    async with AsyncSession(engine) as db:
        raw = await reference.load(db, org)
        technician = next(t["assignee_id"] for t in raw.tickets if t["assignee_id"])
        cases.append((everything, KpiFilters(technician_id=technician), SliceBy.CHANNEL,
                      everything.end))
        for period, filters, slice_by, now in cases:
            report = await service.kpi_report(db, organisation_id=org, period=period,
                                              filters=filters, slice_by=slice_by, now=now)
            assert_same(report, reference.compute(raw, period=period, filters=filters,
                                                  slice_by=slice_by, now=now))
        # The generated activity has something in every KPI (else the check proves little).
        overall = reference.compute(raw, period=everything, filters=KpiFilters(),
                                    slice_by=None, now=everything.end)[None]
        assert all(n > 0 for _, n in overall.values()), overall
