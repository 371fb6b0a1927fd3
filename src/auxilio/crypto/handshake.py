"""The E2E handshake: three control messages relayed unchanged by the server.

    agent                              server (relay)                       technician client
      |  e2e.hello  {agent key, signed by device key} ------------------------------>  |
      |  <------------------------------ e2e.accept {technician key, confirmation}     |
      |  e2e.confirm {confirmation} ------------------------------------------------>  |

Both ephemeral keys are authenticated. The agent's by its Ed25519 device key (the technician
checks it against ``device_public_key`` in the server-signed grant); the technician's by the grant
itself (the agent accepts only the ``technician_e2e_key`` its verified grant names). Each
confirmation is the first frame of its direction on the ``CONTROL_E2E`` channel, sealing a fixed
text with the derived keys: if anyone swapped a key, the peers hold different keys and the
confirmation fails to open (``KeyConfirmationFailed``) before any content flows.

Usage::

    offer = Handshake.agent_offer(device_key=device_key, grant=grant)      # agent
    send(offer.hello)
    pending = Handshake.technician_accept(hello, technician_key=tk, grant=grant)  # technician
    send(pending.accept)
    agent_session, confirm = offer.complete(accept)                        # agent
    send(confirm)
    technician_session = pending.complete(confirm)                         # technician
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from auxilio.crypto.e2e import E2ESession, Role, SessionKeys, derive_session_keys
from auxilio.crypto.errors import (
    E2EError,
    HandshakeFailed,
    KeyConfirmationFailed,
    KeyEncodingInvalid,
    SignatureInvalid,
)
from auxilio.crypto.grants import Grant
from auxilio.crypto.keys import (
    b64url_decode,
    b64url_encode,
    decode_x25519_public_key,
    encode_public_key,
    public_key_bytes,
)
from auxilio.crypto.signing import DocumentKind, check_signature_for, sign_bytes_for
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import E2EAccept, E2EConfirm, E2EHello

CONFIRMATION_TEXT = b"auxilio e2e v1 key confirmation "


def _message_id() -> str:
    return b64url_encode(os.urandom(9))


def _hello_payload(hello: E2EHello) -> dict[str, str]:
    return {
        "support_session_id": hello.support_session_id,
        "device_id": hello.device_id,
        "agent_ephemeral_key": hello.agent_ephemeral_key,
        "technician_ephemeral_key": hello.technician_ephemeral_key,
    }


def _exchange(private: X25519PrivateKey, peer: X25519PublicKey) -> bytes:
    try:
        return private.exchange(peer)
    except ValueError as exc:  # low-order point: all-zero shared secret
        raise HandshakeFailed("peer ephemeral key is not a usable X25519 key") from exc


def _confirmation(role: Role, keys: SessionKeys) -> bytes:
    # The role and transcript make each side's text distinct and tied to this very exchange.
    return CONFIRMATION_TEXT + role.value.encode() + b" " + keys.transcript


def _seal_confirmation(session: E2ESession) -> str:
    frame = session.seal(ChannelId.CONTROL_E2E, _confirmation(session.role, session.keys))
    return b64url_encode(frame)


def _open_confirmation(session: E2ESession, confirmation: str) -> None:
    peer = Role.TECHNICIAN if session.role is Role.AGENT else Role.AGENT
    try:
        plaintext = session.channel(ChannelId.CONTROL_E2E).open(b64url_decode(confirmation))
    except (E2EError, KeyEncodingInvalid) as exc:
        raise KeyConfirmationFailed(
            "peer confirmation does not open: the ephemeral keys were swapped in transit"
        ) from exc
    if plaintext != _confirmation(peer, session.keys):
        raise KeyConfirmationFailed("peer confirmation has the wrong content")


class AgentOffer:
    """The agent between sending ``e2e.hello`` and receiving ``e2e.accept``."""

    def __init__(self, *, device_key: Ed25519PrivateKey, grant: Grant, message_id: str) -> None:
        self._grant = grant
        self._ephemeral = X25519PrivateKey.generate()
        self._done = False
        payload = {
            "support_session_id": grant.support_session_id,
            "device_id": grant.device_id,
            "agent_ephemeral_key": encode_public_key(self._ephemeral.public_key()),
            "technician_ephemeral_key": grant.technician_e2e_key,
        }
        signature = sign_bytes_for(device_key, kind=DocumentKind.E2E_AGENT_KEY, payload=payload)
        self.hello = E2EHello(id=message_id, signature=b64url_encode(signature), **payload)

    def complete(
        self, accept: E2EAccept, *, message_id: str | None = None
    ) -> tuple[E2ESession, E2EConfirm]:
        """Check the technician's key against the grant and its confirmation; return the session
        and the ``e2e.confirm`` to send."""
        if self._done:
            raise HandshakeFailed("this offer was already completed")
        if accept.support_session_id != self._grant.support_session_id:
            raise HandshakeFailed("e2e.accept is for another support session")
        if accept.technician_ephemeral_key != self._grant.technician_e2e_key:
            raise HandshakeFailed("technician key differs from the one in the signed grant")
        technician_public = self._grant.technician_public_key()
        keys = derive_session_keys(
            _exchange(self._ephemeral, technician_public),
            support_session_id=self._grant.support_session_id,
            agent_public=public_key_bytes(self._ephemeral.public_key()),
            technician_public=public_key_bytes(technician_public),
        )
        session = E2ESession(role=Role.AGENT, keys=keys)
        _open_confirmation(session, accept.confirmation)
        self._done = True
        confirm = E2EConfirm(
            id=message_id or _message_id(),
            support_session_id=keys.support_session_id,
            confirmation=_seal_confirmation(session),
        )
        return session, confirm


class TechnicianPending:
    """The technician between sending ``e2e.accept`` and receiving ``e2e.confirm``."""

    def __init__(self, *, accept: E2EAccept, session: E2ESession) -> None:
        self.accept = accept
        self._session: E2ESession | None = session

    def complete(self, confirm: E2EConfirm) -> E2ESession:
        session = self._session
        if session is None:
            raise HandshakeFailed("this handshake was already completed")
        if confirm.support_session_id != session.support_session_id:
            raise HandshakeFailed("e2e.confirm is for another support session")
        _open_confirmation(session, confirm.confirmation)
        self._session = None
        return session


class Handshake:
    """Entry points for the two sides; see the module docstring for the message flow."""

    @staticmethod
    def agent_offer(
        *, device_key: Ed25519PrivateKey, grant: Grant, message_id: str | None = None
    ) -> AgentOffer:
        """Start the handshake on the agent, after ``verify_grant`` and consent."""
        message_id = message_id or _message_id()
        return AgentOffer(device_key=device_key, grant=grant, message_id=message_id)

    @staticmethod
    def technician_accept(
        hello: E2EHello,
        *,
        technician_key: X25519PrivateKey,
        grant: Grant,
        message_id: str | None = None,
    ) -> TechnicianPending:
        """Authenticate the agent's ephemeral key and answer with ``e2e.accept``.

        ``grant`` must come from ``read_grant`` with the pinned server key; its
        ``device_public_key`` is what authenticates the agent.
        """
        own_public = encode_public_key(technician_key.public_key())
        if own_public != grant.technician_e2e_key:
            raise HandshakeFailed("technician_key is not the key named in the grant")
        if (
            hello.support_session_id != grant.support_session_id
            or hello.device_id != grant.device_id
            or hello.technician_ephemeral_key != own_public
        ):
            raise HandshakeFailed("e2e.hello does not match the grant")
        try:
            check_signature_for(
                grant.device_key(),
                hello.signature,
                kind=DocumentKind.E2E_AGENT_KEY,
                payload=_hello_payload(hello),
            )
            agent_public = decode_x25519_public_key(hello.agent_ephemeral_key)
        except (SignatureInvalid, KeyEncodingInvalid) as exc:
            raise HandshakeFailed("agent ephemeral key is not signed by the device key") from exc
        keys = derive_session_keys(
            _exchange(technician_key, agent_public),
            support_session_id=grant.support_session_id,
            agent_public=public_key_bytes(agent_public),
            technician_public=public_key_bytes(technician_key.public_key()),
        )
        session = E2ESession(role=Role.TECHNICIAN, keys=keys)
        accept = E2EAccept(
            id=message_id or _message_id(),
            support_session_id=grant.support_session_id,
            technician_ephemeral_key=own_public,
            confirmation=_seal_confirmation(session),
        )
        return TechnicianPending(accept=accept, session=session)
