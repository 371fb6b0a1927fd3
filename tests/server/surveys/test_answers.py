"""Answering a survey once: by the signed link, by the person in the portal, never by staff for
them; every refusal has its code and changes nothing (docs/surveys.md)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import update

from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.policy.roles import Role
from auxilio.server.db.base import utcnow
from auxilio.server.errors import SurveyAlreadyAnswered
from auxilio.server.surveys import service
from auxilio.server.surveys.models import Survey
from tests.factories import make_ticket, make_user
from tests.server.surveys.helpers import Scene, make_scene

ANSWER = "/api/v1/surveys/answer"
DECLINE = "/api/v1/surveys/decline"


async def _sent(app: FastAPI) -> tuple[Scene, Survey, str]:
    scene = await make_scene(app)
    await scene.end(await scene.session())
    survey = await scene.only_survey()
    return scene, survey, service.link_token(app.state.signing_key, survey)


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_a_link_answers_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    scene, _, token = await _sent(app)
    first = await client.post(ANSWER, json={"token": token, "score": 4, "comment": "Quick, thanks"})
    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["score"]) == ("answered", 4)
    again = await client.post(ANSWER, json={"token": token, "score": 1})
    assert (again.status_code, _code(again)) == (409, "survey.already_answered")
    survey = await scene.only_survey()
    assert (survey.score, survey.comment, survey.answered_via) == (4, "Quick, thanks", "link")


async def test_an_expired_link_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    scene, survey, token = await _sent(app)
    async with app.state.sessionmaker() as db, db.begin():
        await db.execute(update(Survey).where(Survey.id == survey.id)
                         .values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await client.post(ANSWER, json={"token": token, "score": 4})
    assert (response.status_code, _code(response)) == (410, "survey.link_expired")
    assert (await scene.only_survey()).state == "sent"


@pytest.mark.parametrize("part", ["payload", "signature"])
async def test_a_tampered_link_is_refused(
    app: FastAPI, client: httpx.AsyncClient, part: str
) -> None:
    scene, _, token = await _sent(app)
    body, signature = token.split(".")
    if part == "payload":
        other = b64url_decode(body).replace(b'"subject":"session:', b'"subject":"ticket:')
        token = f"{b64url_encode(other)}.{signature}"
    else:
        raw = bytearray(b64url_decode(signature))
        raw[0] ^= 1
        token = f"{body}.{b64url_encode(bytes(raw))}"
    response = await client.post(ANSWER, json={"token": token, "score": 4})
    assert (response.status_code, _code(response)) == (403, "survey.link_invalid")
    assert (await scene.only_survey()).state == "sent"


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "!!.??", "e30.AAAA"])
async def test_a_malformed_link_is_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(ANSWER, json={"token": token, "score": 4})
    assert response.status_code in (403, 422)
    assert _code(response) in ("survey.link_invalid", "validation_failed")


async def test_a_link_signed_by_another_key_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _, survey, _ = await _sent(app)
    forged = service.link_token(Ed25519PrivateKey.generate(), survey)
    response = await client.post(ANSWER, json={"token": forged, "score": 4})
    assert (response.status_code, _code(response)) == (403, "survey.link_invalid")


async def test_a_renewed_link_replaces_the_old_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, survey, old = await _sent(app)
    renewed = await client.post(f"/api/v1/surveys/mine/{survey.id}/link",
                                headers=scene.requester.headers)
    assert renewed.status_code == 200, renewed.text
    new = renewed.json()["token"]
    assert renewed.json()["link"].endswith(f"/survey/{new}")
    response = await client.post(ANSWER, json={"token": old, "score": 4})
    assert (response.status_code, _code(response)) == (403, "survey.link_invalid")
    assert (await client.post(ANSWER, json={"token": new, "score": 5})).status_code == 200


async def test_a_link_answered_for_another_session_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, _, token = await _sent(app)
    other = await scene.session()
    response = await client.post(ANSWER, json={"token": token, "score": 4,
                                               "subject": f"session:{other}"})
    assert (response.status_code, _code(response)) == (403, "survey.wrong_subject")
    assert (await scene.only_survey()).state == "sent"


async def test_the_person_answers_in_the_portal_without_the_link(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, survey, _ = await _sent(app)
    mine = await client.get("/api/v1/surveys/mine?pending=true", headers=scene.requester.headers)
    assert [s["id"] for s in mine.json()] == [str(survey.id)]
    assert "/survey/" in mine.json()[0]["link"]
    response = await client.post(f"/api/v1/surveys/mine/{survey.id}/answer",
                                 headers=scene.requester.headers, json={"score": 3})
    assert response.status_code == 200, response.text
    assert (await scene.only_survey()).answered_via == "portal"
    pending = await client.get("/api/v1/surveys/mine?pending=true",
                               headers=scene.requester.headers)
    assert pending.json() == []


async def test_someone_elses_survey_is_not_found_in_the_portal(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, survey, _ = await _sent(app)
    stranger = await make_user(app, scene.org, Role.END_USER, enrol_totp=False)
    await make_ticket(app, stranger)
    for path, body in ((f"/api/v1/surveys/mine/{survey.id}/answer", {"score": 5}),
                       (f"/api/v1/surveys/mine/{survey.id}/decline", None),
                       (f"/api/v1/surveys/mine/{survey.id}/link", None)):
        response = await client.post(path, headers=stranger.headers, json=body)
        assert (response.status_code, _code(response)) == (404, "survey.not_found")
    listed = await client.get("/api/v1/surveys/mine", headers=stranger.headers)
    assert listed.json() == []
    assert (await scene.only_survey()).state == "sent"


async def test_staff_cannot_answer_for_the_person(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, survey, _ = await _sent(app)
    response = await client.post(f"/api/v1/surveys/mine/{survey.id}/answer",
                                 headers=scene.technician.headers, json={"score": 5})
    assert (response.status_code, _code(response)) == (403, "survey.not_the_person")
    assert (await scene.only_survey()).state == "sent"


async def test_two_concurrent_answers_count_once(app: FastAPI) -> None:
    scene, _, token = await _sent(app)
    key = app.state.signing_key

    async def answer(score: int) -> int | str:
        try:
            async with app.state.sessionmaker() as db, db.begin():
                await service.answer_by_link(db, key=key, token=token, score=score)
        except SurveyAlreadyAnswered as exc:
            return exc.code
        return score

    results = await asyncio.gather(answer(2), answer(5))
    assert sorted(map(str, results))[0] in ("2", "5")
    assert "survey.already_answered" in results
    survey = await scene.only_survey()
    assert survey.state == "answered" and survey.score in results


async def test_a_declined_survey_cannot_be_answered(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, _, token = await _sent(app)
    declined = await client.post(DECLINE, json={"token": token})
    assert (declined.status_code, declined.json()["state"]) == (200, "declined")
    response = await client.post(ANSWER, json={"token": token, "score": 5})
    assert (response.status_code, _code(response)) == (409, "survey.already_answered")
    survey = await scene.only_survey()
    assert (survey.state, survey.score) == ("declined", None)


@pytest.mark.parametrize("score", [0, 6, -1, 2**31 - 1])
async def test_a_score_outside_the_scale_is_refused(
    app: FastAPI, client: httpx.AsyncClient, score: int
) -> None:
    scene, _, token = await _sent(app)
    response = await client.post(ANSWER, json={"token": token, "score": score})
    assert (response.status_code, _code(response)) == (422, "survey.score_out_of_scale")
    assert response.json()["error"]["details"]["min"] == 1
    assert (await scene.only_survey()).state == "sent"


async def test_a_comment_over_2000_characters_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scene, survey, token = await _sent(app)
    response = await client.post(ANSWER, json={"token": token, "score": 4, "comment": "x" * 2001})
    assert (response.status_code, _code(response)) == (422, "survey.comment_too_long")
    ok = await client.post(f"/api/v1/surveys/mine/{survey.id}/answer",
                           headers=scene.requester.headers, json={"score": 4,
                                                                   "comment": "y" * 2000})
    assert ok.status_code == 200
    assert len((await scene.only_survey()).comment) == 2000
