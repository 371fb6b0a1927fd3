"""The public survey page ``/survey/{token}`` and the portal's pending surveys (no browser: the
page has no script; the form and its outcomes are read from the HTML)."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from auxilio.server.surveys import service
from tests.server.surveys.helpers import Scene, make_scene


def _csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found
    return found.group(1)


def _code(html: str) -> str:
    found = re.search(r'data-code="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def _link(app: FastAPI) -> tuple[Scene, str]:
    scene = await make_scene(app)
    await scene.end(await scene.session())
    survey = await scene.only_survey()
    return scene, f"/survey/{service.link_token(app.state.signing_key, survey)}"


async def test_the_page_shows_the_scale_and_records_one_answer(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, link = await _link(app)
    page = await client.get(link)
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert [int(v) for v in re.findall(r'name="score" value="(\d+)"', page.text)] == [1, 2, 3, 4, 5]
    assert "<script>" not in page.text  # nothing inline: the CSP allows none
    sent = await client.post(link, data={"csrf_token": _csrf(page.text), "action": "answer",
                                         "score": "5", "comment": "Great"})
    assert (sent.status_code, _code(sent.text)) == (200, "survey.answered")
    again = await client.get(link)
    assert (again.status_code, _code(again.text)) == (409, "survey.already_answered")
    survey = await scene.only_survey()
    assert (survey.score, survey.comment, survey.answered_via) == (5, "Great", "link")


async def test_no_thanks_declines(app: FastAPI, client: httpx.AsyncClient) -> None:
    scene, link = await _link(app)
    page = await client.get(link)
    declined = await client.post(link, data={"csrf_token": _csrf(page.text), "action": "decline"})
    assert (declined.status_code, _code(declined.text)) == (200, "survey.declined")
    assert (await scene.only_survey()).state == "declined"


async def test_a_missing_or_foreign_score_shows_the_form_again(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, link = await _link(app)
    csrf = _csrf((await client.get(link)).text)
    for score in ("", "9", "abc"):
        response = await client.post(link, data={"csrf_token": csrf, "score": score,
                                                 "comment": "kept"})
        assert response.status_code == 422
        assert 'data-testid="survey-error"' in response.text and ">kept</textarea>" in response.text
    assert (await scene.only_survey()).state == "sent"


async def test_a_tampered_link_has_its_own_page(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, link = await _link(app)
    response = await client.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
    assert (response.status_code, _code(response.text)) == (403, "survey.link_invalid")


async def test_the_form_needs_the_pages_csrf_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, link = await _link(app)
    await client.get(link)
    response = await client.post(link, data={"score": "4"})
    assert response.status_code == 403
    assert (await scene.only_survey()).state == "sent"


async def test_the_portal_lists_the_persons_pending_survey_only_for_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, link = await _link(app)
    client.cookies.set("auxilio_session", scene.requester.token)
    home = await client.get("/portal")
    assert home.status_code == 200, home.text
    assert f'href="{link}"' in home.text
    ticket = await client.get(f"/portal/tickets/{scene.ticket_id}")
    assert f'href="{link}"' in ticket.text
    client.cookies.set("auxilio_session", scene.technician.token)
    assert 'data-testid="pending-survey"' not in (await client.get("/portal")).text
