"""The monthly report's own choices: the month's period, which two versions it compares, how
it words a value."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from auxilio.server.errors import ReportMonthInvalid
from auxilio.server.reporting.monthly import month_period, shown, versions_to_compare
from auxilio.server.reporting.schemas import (
    KpiFilters,
    KpiReport,
    KpiRow,
    KpiValue,
    SliceBy,
)


def _by_version(counts: dict[str, int]) -> KpiReport:
    period = month_period("2026-11")
    rows = [KpiRow(key=key, kpis={"tickets_created": KpiValue(
        kpi="tickets_created", definition="tickets_created@v1", unit="count", value=float(n),
        n=n)}) for key, n in sorted(counts.items())]  # fmt: skip
    return KpiReport(organisation_id=uuid.uuid4(), period=period, filters=KpiFilters(),
                     slice_by=SliceBy.POLICY_VERSION, generated_at=period.end,
                     overall=KpiRow(key=None, kpis={}), rows=rows)  # fmt: skip


def test_a_month_runs_from_its_first_day_to_the_next_months() -> None:
    december = month_period("2026-12")
    assert (december.start, december.end) == (datetime(2026, 12, 1, tzinfo=UTC),
                                               datetime(2027, 1, 1, tzinfo=UTC))  # fmt: skip


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-11", "2026-1", "", "2026-11-01"])
def test_it_refuses_a_month_not_written_yyyy_mm(month: str) -> None:
    with pytest.raises(ReportMonthInvalid):
        month_period(month)


def test_without_a_pilot_it_compares_the_two_versions_with_the_most_tickets() -> None:
    report = _by_version({"v1:a": 500, "v2:b": 40, "v3:c": 300, "unknown": 900})
    assert versions_to_compare(report) == ("v1:a", "v3:c")


def test_a_pilot_is_compared_with_the_version_that_decided_most_of_the_rest() -> None:
    report = _by_version({"v1:a": 500, "v2:b": 40, "v3:c": 300})
    assert versions_to_compare(report, pilot="v2:b") == ("v1:a", "v2:b")
    assert versions_to_compare(_by_version({"v2:b": 40}), pilot="v2:b") is None
    assert versions_to_compare(_by_version({"v1:a": 5})) is None


def test_values_are_worded_in_their_unit() -> None:
    assert shown("resolution_time_mean", 5400.0) == "1 h 30 min"
    assert shown("resolution_time_mean", -90.0) == "-0 h 02 min"
    assert shown("csat", 64.94) == "64.9 %"
    assert shown("cost_per_ticket", 3010.0) == "30.10"
    assert shown("tickets_created", 1200.0) == "1200"
    assert shown("sla_breaches", None) == "-"
