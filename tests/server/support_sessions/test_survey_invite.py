"""The agent's survey invite (docs/surveys.md): after a session the person consented to ends,
with a survey due at once, the server sends a signed ``session.survey`` before the report; its
link answers the survey once."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.signing import verify_document
from auxilio.protocol.frames import EndReason, Party, SessionEnd
from auxilio.protocol.survey import SURVEY_INVITE_KIND, SurveyInvite
from tests.server.support_sessions.conftest import World, policy_text
from tests.server.support_sessions.flow import active
from tests.server.support_sessions.peers import mid

SURVEY_AT_ONCE = "post_session:\n  survey: {scale: 1-5, delay: 0s, sampling: 1.0}\n"


async def test_the_agent_gets_a_signed_invite_whose_link_answers_once(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy_text(extra=SURVEY_AT_ONCE))
    running = await active(http, world, signing_key, handshake=False)
    await running.agent.send(SessionEnd(id=mid(), support_session_id=running.sid,
                                        ended_by=Party.END_USER, reason=EndReason.USER_ENDED))
    message = await running.agent.expect("session.survey")
    await running.agent.expect("session.report")
    invite = SurveyInvite.model_validate(
        verify_document(signing_key.public_key(), message.invite, kind=SURVEY_INVITE_KIND))
    assert invite.support_session_id == running.sid
    assert (invite.scale_min, invite.scale_max) == (1, 5)
    token = invite.url.rsplit("/survey/", 1)[1]
    answered = await http.post("/api/v1/surveys/answer",
                               json={"token": token, "score": 5,
                                     "subject": f"session:{running.sid}"})
    assert answered.status_code == 200, answered.text
    again = await http.post("/api/v1/surveys/answer", json={"token": token, "score": 1})
    assert again.json()["error"]["code"] == "survey.already_answered"
    assert "survey:survey:answered" in [e for e in await _survey_actions(world)]


async def test_no_invite_when_the_survey_waits_for_its_delay(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy_text(extra=SURVEY_AT_ONCE.replace("0s", "1h")))
    running = await active(http, world, signing_key, handshake=False)
    await running.agent.send(SessionEnd(id=mid(), support_session_id=running.sid,
                                        ended_by=Party.END_USER, reason=EndReason.USER_ENDED))
    await running.agent.expect("session.report")
    assert running.agent.texts_of("session.survey") == []


async def _survey_actions(world: World) -> list[str]:
    from sqlalchemy import select

    from auxilio.server.audit.models import AuditEvent

    async with world.app.state.sessionmaker() as db:
        rows = await db.execute(select(AuditEvent.action).order_by(AuditEvent.seq))
        return [a for (a,) in rows if a.startswith("survey:")]
