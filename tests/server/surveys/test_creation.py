"""When a survey is made, for whom, and how it is sent and expires (docs/surveys.md)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select

from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.base import utcnow
from auxilio.server.surveys import service
from auxilio.server.surveys.rounds import SurveyRounds
from tests.server.surveys.helpers import make_scene, survey_policy


async def _actions(app: FastAPI, prefix: str = "survey:") -> list[str]:
    async with app.state.sessionmaker() as db:
        rows = await db.execute(select(AuditEvent.action).order_by(AuditEvent.seq))
        return [a for (a,) in rows if a.startswith(prefix)]


async def test_an_ended_session_gets_a_survey_tied_to_its_ticket_technician_and_policy(
    app: FastAPI,
) -> None:
    scene = await make_scene(app)
    sid = await scene.session()
    await scene.end(sid)
    survey = await scene.only_survey()
    assert survey.subject == f"session:{sid}"
    assert (survey.support_session_id, survey.ticket_id) == (sid, scene.ticket_id)
    assert survey.technician_id == scene.technician.user.id
    assert survey.requester_id == scene.requester.user.id
    assert survey.policy_version == "v1:test"
    assert (survey.state, survey.scale_min, survey.scale_max) == ("sent", 1, 5)
    assert survey.sent_at is not None
    assert survey.expires_at == survey.sent_at + timedelta(days=14)
    assert await _actions(app) == ["survey:survey:created", "survey:survey:sent"]


async def test_a_session_the_person_never_consented_to_gets_no_survey(app: FastAPI) -> None:
    scene = await make_scene(app)
    sid = await scene.session(activated=False)
    await scene.end(sid, state="expired")
    assert await scene.surveys() == []


async def test_resolving_a_ticket_without_a_session_surveys_the_ticket_once(app: FastAPI) -> None:
    scene = await make_scene(app)
    await scene.resolve()
    survey = await scene.only_survey()
    assert survey.subject == f"ticket:{scene.ticket_id}"
    assert survey.support_session_id is None
    # Reopened and resolved again: the ticket was surveyed already.
    await scene.reopen()
    await scene.resolve()
    assert len(await scene.surveys()) == 1


async def test_a_ticket_whose_session_was_surveyed_gets_no_second_survey_on_resolution(
    app: FastAPI,
) -> None:
    scene = await make_scene(app)
    sid = await scene.session()
    await scene.end(sid)
    await scene.resolve()
    assert [s.subject for s in await scene.surveys()] == [f"session:{sid}"]


async def test_sampling_zero_makes_no_survey_and_one_makes_every_survey(app: FastAPI) -> None:
    scene = await make_scene(app, policy=survey_policy(sampling=0.0))
    await scene.end(await scene.session())
    await scene.resolve()
    assert await scene.surveys() == []
    assert await _actions(app) == []
    assert not service.sampled_in("session:x", 0.0)
    assert service.sampled_in("session:x", 1.0)
    # Deterministic: one subject is always on the same side of the same rate.
    subjects = [f"session:{i}" for i in range(400)]
    first = [service.sampled_in(s, 0.5) for s in subjects]
    assert first == [service.sampled_in(s, 0.5) for s in subjects]
    assert 120 < sum(first) < 280


async def test_a_policy_without_surveys_makes_none(app: FastAPI) -> None:
    from tests.server.support_sessions.conftest import policy_text

    scene = await make_scene(app, policy=policy_text())
    await scene.end(await scene.session())
    assert await scene.surveys() == []


async def test_a_delayed_survey_is_sent_by_the_round_and_expires_unanswered(
    app: FastAPI,
) -> None:
    scene = await make_scene(app, policy=survey_policy(delay="1h"))
    await scene.end(await scene.session())
    survey = await scene.only_survey()
    assert survey.state == "scheduled" and survey.sent_at is None
    assert survey.send_after - survey.created_at == timedelta(hours=1)
    # The app's own round: nothing is due yet.
    assert await SurveyRounds(app.state.sessionmaker).run_once() == (0, 0)
    async with app.state.sessionmaker() as db, db.begin():
        assert await service.send_due(db, now=utcnow() + timedelta(hours=2)) == 1
    survey = await scene.only_survey()
    assert survey.state == "sent"
    assert survey.sent_at is not None
    assert survey.expires_at == survey.sent_at + timedelta(days=14)
    async with app.state.sessionmaker() as db, db.begin():
        assert await service.expire_due(db, now=survey.sent_at + timedelta(days=13)) == 0
        assert await service.expire_due(db, now=survey.sent_at + timedelta(days=14)) == 1
    assert (await scene.only_survey()).state == "expired"
    assert await _actions(app) == ["survey:survey:created", "survey:survey:sent",
                                   "survey:survey:expired"]


async def test_the_policy_the_session_was_decided_with_decides_its_survey(
    app: FastAPI,
) -> None:
    from sqlalchemy import update

    from auxilio.server.policies import service as policies
    from auxilio.server.support_sessions.models import SupportSession
    from tests.server.support_sessions.conftest import policy_text

    scene = await make_scene(app)  # version 1: surveys, sampling 1
    async with app.state.sessionmaker() as db:
        first = (await policies.get_active_policy(db, organisation_id=scene.org.id)).version_label
    sid = await scene.session()
    async with app.state.sessionmaker() as db, db.begin():
        await db.execute(update(SupportSession).where(SupportSession.id == sid)
                         .values(policy_version=first))
    await scene.use_policy(policy_text())  # version 2, active now: no surveys
    await scene.end(sid)
    survey = await scene.only_survey()
    assert survey.policy_version == first


async def test_a_ticket_is_surveyed_by_the_version_it_was_opened_under(app: FastAPI) -> None:
    from tests.server.support_sessions.conftest import policy_text

    scene = await make_scene(app)  # the ticket opened under version 1: surveys
    await scene.use_policy(policy_text())  # version 2: none
    await scene.resolve()
    survey = await scene.only_survey()
    assert survey.subject == f"ticket:{scene.ticket_id}"
    assert survey.policy_version is not None and survey.policy_version.startswith("v1:")
