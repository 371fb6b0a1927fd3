"""The agent's survey invite: the signed ``session.survey`` frame sent right after a session's
end, when its survey was sent at once (the policy's delay is 0). A later survey reaches the
person in the portal only: by then the agent has gone."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.signing import sign_document
from auxilio.protocol.frames import SessionSurveyMessage, encode_message
from auxilio.protocol.survey import SURVEY_INVITE_KIND, SurveyInvite
from auxilio.protocol.types import SignedDocument
from auxilio.server.relay.bus import BusMessage
from auxilio.server.relay.hub import Peer
from auxilio.server.surveys import service
from auxilio.server.surveys.models import Survey
from auxilio.server.surveys.routes import link_url

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auxilio.server.settings import Settings
    from auxilio.server.support_sessions.runtime import SupportSessionRuntime

QUESTION = "How satisfied are you with the help you received?"


def signed_invite(key: Ed25519PrivateKey, settings: Settings, survey: Survey) -> SignedDocument:
    invite = SurveyInvite(
        support_session_id=str(survey.support_session_id), survey_id=str(survey.id),
        url=link_url(settings, service.link_token(key, survey)), question=QUESTION,
        scale_min=survey.scale_min, scale_max=survey.scale_max, expires_at=survey.expires_at,
    )  # fmt: skip
    return sign_document(key, invite.model_dump(mode="json"), kind=SURVEY_INVITE_KIND)


async def send_survey_invite(runtime: SupportSessionRuntime, support_session_id: uuid.UUID) -> bool:
    """Send the invite if the session's survey went out at its end; True when one was sent."""

    async def find(db: AsyncSession) -> Survey | None:
        return await service.get_for_support_session(db, support_session_id=support_session_id)

    survey = await runtime.in_transaction(find)
    if (survey is None or survey.state != service.SurveyState.SENT
            or survey.sent_at != survey.created_at):
        return False
    signed = signed_invite(runtime.signing_key, runtime.settings, survey)
    text = encode_message(SessionSurveyMessage(
        id=uuid.uuid4().hex[:16], support_session_id=str(support_session_id), invite=signed))
    await runtime.hub.send(str(support_session_id), Peer.AGENT, BusMessage.text(text))
    return True
