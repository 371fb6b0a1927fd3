"""The survey invite the server may send after the session's end (``session.survey``): shown to
the person only when the pinned server key signed it, for this session; anything else is logged
(``survey_refused``) and never shown, so nobody on the way can put another site's link in front
of the person as if it came from their support."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from auxilio.agent.feed import Feed
from auxilio.agent.state import ActivityLog
from auxilio.crypto.errors import SignatureInvalid
from auxilio.crypto.signing import verify_document
from auxilio.protocol.frames import SessionSurveyMessage
from auxilio.protocol.survey import SURVEY_INVITE_KIND, SurveyInvite


def read_invite(
    server_key: Ed25519PublicKey, message: SessionSurveyMessage, *, support_session_id: str,
    log: ActivityLog,
) -> SurveyInvite | None:
    """The invite if the server signed it for this session; None (and a log line) otherwise."""
    try:
        payload = verify_document(server_key, message.invite, kind=SURVEY_INVITE_KIND)
        invite = SurveyInvite.model_validate(payload)
    except (SignatureInvalid, ValidationError):
        log.append("survey_refused", reason="not signed by the pinned server key")
        return None
    if invite.support_session_id != support_session_id:
        log.append("survey_refused", reason="for another session")
        return None
    return invite


def invite_url(invite: SurveyInvite, server_url: str | None) -> str:
    """The link to open: as signed, or on the agent's own server when the server knows no
    public URL of its own (the signed path then goes after the address the agent connected to)."""
    if invite.url.startswith("/") and server_url:
        return server_url.rstrip("/") + invite.url
    return invite.url


def invite_text(invite: SurveyInvite, server_url: str | None) -> str:
    return (f"{invite.question} Tell us from {invite.scale_min} to {invite.scale_max}, once, "
            f"until {invite.expires_at:%Y-%m-%d}: {invite_url(invite, server_url)}")


def show_invite(feed: Feed, invite: SurveyInvite, server_url: str | None) -> None:
    """In the session's feed: the terminal, and the session window while it is open."""
    feed.info(invite_text(invite, server_url))
