"""The survey invite after the session's end: shown when the pinned server key signed it for
this session, refused (logged, never shown) when unsigned, tampered or another session's."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.join import show_report
from auxilio.agent.state import AgentState
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.frames import SessionEnd, SessionReportMessage, SessionSurveyMessage
from auxilio.protocol.report import SessionReport as ServerReport
from auxilio.protocol.survey import SURVEY_INVITE_KIND, SurveyInvite
from auxilio.protocol.types import SignedDocument

from .factories import now
from .test_session_enforcement import harness

LINK = "https://help.example.test/survey/eyJhIjoiYiJ9.c2ln"


def _invite(session: str = "ss-1001", url: str = LINK) -> SurveyInvite:
    return SurveyInvite(support_session_id=session, survey_id="sv-1", url=url,
                        question="How satisfied are you with the help you received?",
                        scale_min=1, scale_max=5, expires_at=now() + timedelta(days=14))


async def _end_with(h: object, server_key: Ed25519PrivateKey, *invites: SignedDocument) -> None:
    report = ServerReport(support_session_id="ss-1001", technician_name="Ana", state="ended",
                          organisation_name="Escuela", summary_state="written", summary="Done.")
    signed_report = sign_document(server_key, report.model_dump(mode="json"),
                                  kind=DocumentKind.SESSION_REPORT)
    link = h.link  # type: ignore[attr-defined]
    await link.incoming.put(SessionEnd(id="e1", support_session_id="ss-1001",  # type: ignore[arg-type]
                                       ended_by="technician", reason="technician_ended"))  # type: ignore[arg-type]
    for index, invite in enumerate(invites):
        await link.incoming.put(SessionSurveyMessage(id=f"s{index}", support_session_id="ss-1001",
                                                     invite=invite))
    await link.incoming.put(SessionReportMessage(id="r1", support_session_id="ss-1001",
                                                 report=signed_report))
    await h.finished()  # type: ignore[attr-defined]


async def test_a_signed_invite_shows_the_survey_link(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    signed = sign_document(server_key, _invite().model_dump(mode="json"), kind=SURVEY_INVITE_KIND)
    await _end_with(h, server_key, signed)
    assert h.runner.survey is not None
    assert (h.runner.survey.url, h.runner.survey.survey_id) == (LINK, "sv-1")
    assert LINK in h.console.export_text()
    # Under the final report too, where it stays once the session window has closed.
    after = Console(record=True, width=200)
    show_report(after, h.runner, h.log)
    assert LINK in after.export_text()


async def test_an_unsigned_or_tampered_invite_is_never_shown(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    evil = "https://evil.example.test/survey/x.y"
    forged = sign_document(Ed25519PrivateKey.generate(), _invite(url=evil).model_dump(mode="json"),
                           kind=SURVEY_INVITE_KIND)
    genuine = sign_document(server_key, _invite().model_dump(mode="json"), kind=SURVEY_INVITE_KIND)
    body = b64url_decode(genuine.body).replace(LINK.encode(), evil.encode())
    tampered = SignedDocument(body=b64url_encode(body), signature=genuine.signature)
    wrong_kind = sign_document(server_key, _invite(url=evil).model_dump(mode="json"),
                               kind=DocumentKind.SESSION_REPORT)
    other = sign_document(server_key, _invite(session="ss-9", url=evil).model_dump(mode="json"),
                          kind=SURVEY_INVITE_KIND)
    await _end_with(h, server_key, forged, tampered, wrong_kind, other)
    assert h.runner.survey is None
    after = Console(record=True, width=200)
    show_report(after, h.runner, h.log)
    assert "/survey/" not in after.export_text()
    assert "evil.example.test" not in h.console.export_text()
    refused = [e for e in h.log.events() if e["event"] == "survey_refused"]
    assert len(refused) == 4
