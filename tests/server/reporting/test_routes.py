"""The KPI REST API (/api/v1/reports): JSON and CSV with the same figures, every bad input's
code, who may read it, and the monthly report's files."""

from __future__ import annotations

import csv
import io
import struct
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from auxilio.policy.roles import Role
from auxilio.server.reporting.definitions import DEFINITIONS
from auxilio.server.reporting.service import kpi_report_from_csv
from auxilio.server.tickets.models import Ticket
from tests.factories import Person, make_org, make_technician, make_ticket, make_user

API = "/api/v1/reports"
NOV = {"start": "2026-11-01", "end": "2026-12-01"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def _ticket(app: FastAPI, requester: Person, *, created: datetime,
                  resolved_after: float | None, category: str, version: str,
                  assignee: Person | None = None) -> None:  # fmt: skip
    """A ticket opened at ``created``, resolved ``resolved_after`` hours later (None: open)."""
    ticket_id = await make_ticket(app, requester, category=category)
    resolved = None if resolved_after is None else created + timedelta(hours=resolved_after)
    async with app.state.sessionmaker() as db, db.begin():
        await db.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            created_at=created, first_response_at=created + timedelta(minutes=30),
            resolved_at=resolved, status="resolved" if resolved else "open",
            policy_version=version, assignee_id=assignee.user.id if assignee else None,
        ))  # fmt: skip


@pytest.fixture
async def people(app: FastAPI) -> dict[str, Person]:
    """A supervisor, an end user with five November tickets (four resolved: 2, 4, 6 and 8
    hours; two policy versions), and an end user of another organisation with one."""
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    technician = await make_technician(app, org)
    person = await make_user(app, org)
    day = datetime(2026, 11, 3, 9, tzinfo=UTC)
    for index, hours in enumerate((2.0, 4.0, 6.0, 8.0, None)):
        await _ticket(app, person, created=day + timedelta(days=index), resolved_after=hours,
                      category="hardware" if index % 2 else "network",
                      version="v1" if index < 2 else "v2", assignee=technician)  # fmt: skip
    other = await make_org(app)
    outsider = await make_user(app, other)
    await _ticket(app, outsider, created=day, resolved_after=100.0, category="hardware",
                  version="v1")  # fmt: skip
    return {"supervisor": supervisor, "person": person, "technician": technician}


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_it_answers_the_kpis_of_the_callers_organisation_with_their_definitions(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    response = await client.get(f"{API}/kpis", params=NOV, headers=people["supervisor"].headers)
    assert response.status_code == 200, response.text
    kpis = response.json()["overall"]["kpis"]
    assert kpis["tickets_created"]["value"] == 5  # not the other organisation's ticket
    assert kpis["tickets_resolved"]["value"] == 4
    assert kpis["resolution_time_mean"]["value"] == 5 * 3600
    assert kpis["resolution_time_mean"]["definition"] == "resolution_time_mean@v1"
    assert {k: v["definition"] for k, v in kpis.items()} == {
        k: DEFINITIONS[k].ref for k in kpis
    }


async def test_the_csv_export_reads_back_as_the_same_figures_as_the_json(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    headers = people["supervisor"].headers
    params = {**NOV, "slice_by": "category"}
    as_json = (await client.get(f"{API}/kpis", params=params, headers=headers)).json()
    as_csv = await client.get(f"{API}/kpis", params={**params, "format": "csv"}, headers=headers)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"].startswith("attachment;")
    overall, rows = kpi_report_from_csv(as_csv.text)
    assert overall.model_dump(mode="json") == as_json["overall"]
    assert [r.model_dump(mode="json") for r in rows] == as_json["rows"]
    assert [r["key"] for r in as_json["rows"]] == ["hardware", "network"]
    # And the file is plain CSV anyone can read: one line per slice key and KPI, plus a header.
    lines = list(csv.reader(io.StringIO(as_csv.text)))
    assert len(lines) == 1 + 3 * len(as_json["overall"]["kpis"])


async def test_the_trend_the_distributions_and_the_comparison_answer(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    headers = people["supervisor"].headers
    trend = await client.get(f"{API}/kpis/trend", params={**NOV, "bucket": "week"},
                             headers=headers)  # fmt: skip
    assert trend.status_code == 200
    assert sum(p["kpis"]["tickets_created"]["value"] for p in trend.json()) == 5
    spread = await client.get(f"{API}/kpis/distributions", params=NOV, headers=headers)
    assert sum(spread.json()["resolution_time"]["counts"]) == 4
    compared = await client.get(f"{API}/kpis/compare", params={"a": "v1", "b": "v2"},
                                headers=headers)  # fmt: skip
    body = compared.json()
    assert body["a"]["row"]["kpis"]["resolution_time_mean"]["value"] == 3 * 3600
    assert body["b"]["row"]["kpis"]["resolution_time_mean"]["value"] == 7 * 3600
    assert body["deltas"]["resolution_time_mean"] == 4 * 3600


async def test_the_definitions_name_what_every_result_names(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    response = await client.get(f"{API}/kpis/definitions", headers=people["supervisor"].headers)
    found = {d["id"]: d for d in response.json()}
    assert set(found) == set(DEFINITIONS)
    assert found["csat"]["ref"] == "csat@v1" and found["csat"]["unit"] == "percent"


BAD_INPUTS = [
    ("/kpis", {"start": "2026-11-10", "end": "2026-11-01"}, "report.period_invalid"),
    ("/kpis", {"start": "2026-11-01", "end": "2026-11-01"}, "report.period_invalid"),
    ("/kpis", {"start": "yesterday", "end": "2026-11-01"}, "report.period_invalid"),
    ("/kpis", {"end": "2026-11-01"}, "report.period_invalid"),
    ("/kpis", {"start": "2025-01-01", "end": "2026-11-01"}, "report.period_too_long"),
    ("/kpis", {**NOV, "slice_by": "mood"}, "report.slice_unknown"),
    ("/kpis", {**NOV, "format": "xlsx"}, "report.format_unknown"),
    ("/kpis", {**NOV, "technician_id": "not-a-uuid"}, "report.filter_invalid"),
    ("/kpis", {**NOV, "team": "a\u0000b"}, "report.filter_invalid"),
    ("/kpis/trend", {**NOV, "bucket": "hour"}, "report.bucket_unknown"),
    ("/kpis/distributions", {"start": "2026-11-01"}, "report.period_invalid"),
    ("/kpis/compare", {"a": "v1", "b": "v\u00072"}, "report.filter_invalid"),
    ("/monthly", {"month": "2026-13"}, "report.month_invalid"),
    ("/monthly", {"month": "November"}, "report.month_invalid"),
    ("/monthly", {}, "report.month_invalid"),
    ("/monthly", {"month": "2026-11", "format": "svg"}, "report.format_unknown"),
]


async def test_it_refuses_each_bad_input_with_its_code(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    # One arrangement for all the cases: the staff factories enrol TOTP, which is slow.
    answers = []
    for path, params, _code_wanted in BAD_INPUTS:
        response = await client.get(f"{API}{path}", params=params,
                                    headers=people["supervisor"].headers)  # fmt: skip
        answers.append((path, params, response.status_code, _code(response)))
    assert answers == [(p, q, 422, c) for p, q, c in BAD_INPUTS]


async def test_it_refuses_people_without_report_read(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    for who in ("person", "technician"):
        for path in ("/kpis", "/kpis/definitions", "/monthly"):
            response = await client.get(f"{API}{path}", params={**NOV, "month": "2026-11"},
                                        headers=people[who].headers)  # fmt: skip
            assert (who, path, response.status_code, _code(response)) == \
                (who, path, 403, "forbidden")  # fmt: skip
    anonymous = await client.get(f"{API}/kpis", params=NOV)
    assert anonymous.status_code == 401


async def test_the_monthly_report_is_a_pdf_or_a_tall_png(
    client: httpx.AsyncClient, people: dict[str, Person]
) -> None:
    headers = people["supervisor"].headers
    pdf = await client.get(f"{API}/monthly", params={"month": "2026-11"}, headers=headers)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    # One page per figure: the KPI table, 5 charts, 2 slice tables, the comparison and its chart.
    assert pdf.content.count(b"/Type /Page\n") + pdf.content.count(b"/Type /Page ") >= 8
    png = await client.get(f"{API}/monthly", params={"month": "2026-11", "format": "png"},
                           headers=headers)  # fmt: skip
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png.content[16:24])  # the IHDR chunk
    assert 600 <= width <= 1200
    assert height > 3 * width  # the pages one under the other
    assert 20_000 < len(png.content) < 10_000_000
