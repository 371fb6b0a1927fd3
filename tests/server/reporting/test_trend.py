"""kpi_trend's bucketed passes against kpi_report run on each bucket as its own period (the way
the trend was computed empty), on generated activity, both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from auxilio.server.demo.activity import ActivitySummary, generate_activity
from auxilio.server.reporting import service
from auxilio.server.reporting.definitions import DEFINITIONS, Unit
from auxilio.server.reporting.schemas import KpiFilters, Period

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 20
PER_DAY = 15  # 300 tickets
# Not on a midnight, running past the generated days and cut mid-week.
PERIOD = Period(start=START + timedelta(days=1, hours=7, minutes=30),
                end=START + timedelta(days=DAYS + 4, hours=2))
AFTER = START + timedelta(days=DAYS + 30)


@pytest.fixture
async def activity(engine: AsyncEngine) -> ActivitySummary:
    return await generate_activity(engine, start=START, days=DAYS, tickets_per_day=PER_DAY,
                                   seed=11)


async def _check(db: AsyncSession, org: uuid.UUID, bucket: Literal["day", "week"],
                 filters: KpiFilters) -> int:
    """Compare KPI by KPI; return how many (bucket, KPI) values were measured (n > 0)."""
    points = await service.kpi_trend(db, organisation_id=org, period=PERIOD,
                                     filters=filters, bucket=bucket, now=AFTER)
    parts = service.buckets(PERIOD, bucket)
    assert [p.bucket_start for p in points] == [p.start for p in parts]
    measured = 0
    for point, part in zip(points, parts, strict=True):
        assert set(point.kpis) == set(service.TREND_KPIS)
        old = await service.kpi_report(db, organisation_id=org, period=part,
                                       filters=filters, now=AFTER)
        for kpi, got in point.kpis.items():
            want = old.overall.kpis[kpi]
            where = (bucket, part.start, kpi, got, want)
            assert (got.n, got.definition, got.unit, got.note) == (
                want.n, want.definition, want.unit, want.note), where
            if want.value is None:
                assert got.value is None, where
                continue
            measured += got.n > 0
            if DEFINITIONS[kpi].unit is Unit.SECONDS:
                assert got.value == pytest.approx(want.value, rel=1e-9, abs=1e-6), where
            else:
                assert got.value == pytest.approx(want.value, rel=1e-12), where
    return measured


@pytest.mark.parametrize("bucket", ["day", "week"])
async def test_the_bucketed_trend_equals_a_report_per_bucket(
    engine: AsyncEngine, activity: ActivitySummary, bucket: Literal["day", "week"]
) -> None:
    async with AsyncSession(engine) as db:
        measured = await _check(db, activity.organisation_id, bucket, KpiFilters())
    # Every KPI measured in most buckets: the comparison is not over empty values.
    assert measured >= len(service.TREND_KPIS) * (2 if bucket == "week" else 10)


async def test_buckets_with_nothing_are_points_with_n_0(
    engine: AsyncEngine, activity: ActivitySummary
) -> None:
    # A year after the generated activity: nothing is opened, resolved or surveyed.
    later = START + timedelta(days=365)
    empty = Period(start=later, end=later + timedelta(days=9, hours=3))
    async with AsyncSession(engine) as db:
        points = await service.kpi_trend(db, organisation_id=activity.organisation_id,
                                         period=empty, bucket="day", now=AFTER)
    assert [p.bucket_start for p in points] == [b.start for b in service.buckets(empty, "day")]
    assert len(points) == 10
    for point in points:
        assert set(point.kpis) == set(service.TREND_KPIS)
        for kpi, v in point.kpis.items():
            # A count of nothing is 0 (as kpi_report gives it); the other KPIs have no value.
            empty = 0 if DEFINITIONS[kpi].unit is Unit.COUNT else None
            assert (v.n, v.value) == (0, empty), (point.bucket_start, kpi, v)


@pytest.mark.parametrize("bucket", ["day", "week"])
async def test_the_bucketed_trend_with_filters_equals_a_report_per_bucket(
    engine: AsyncEngine, activity: ActivitySummary, bucket: Literal["day", "week"]
) -> None:
    _, v2 = activity.policy_versions
    async with AsyncSession(engine) as db:
        for filters in (KpiFilters(team="service-desk"),
                        KpiFilters(device_group=activity.pilot_group, policy_version=v2)):
            measured = await _check(db, activity.organisation_id, bucket, filters)
            assert measured > 0, filters
