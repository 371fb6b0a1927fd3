"""Support session states and the transitions the protocol allows (DESIGN §4).

``requested -> awaiting_consent -> active -> ended``; the policy can deny a request, and the person
on the device can reject it or let the prompt expire. The three refusals and ``ended`` are final.
"""

from __future__ import annotations

from enum import StrEnum

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode


class SupportSessionState(StrEnum):
    REQUESTED = "requested"
    AWAITING_CONSENT = "awaiting_consent"
    ACTIVE = "active"
    ENDED = "ended"
    DENIED = "denied"
    REJECTED = "rejected"
    EXPIRED = "expired"


_S = SupportSessionState

ALLOWED_TRANSITIONS: dict[SupportSessionState, frozenset[SupportSessionState]] = {
    # A session may be ended before consent too: the technician can cancel a pending request.
    _S.REQUESTED: frozenset({_S.AWAITING_CONSENT, _S.DENIED, _S.ENDED}),
    _S.AWAITING_CONSENT: frozenset({_S.ACTIVE, _S.REJECTED, _S.EXPIRED, _S.ENDED}),
    _S.ACTIVE: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
    _S.DENIED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}

FINAL_STATES = frozenset(state for state, nexts in ALLOWED_TRANSITIONS.items() if not nexts)


def can_transition(current: SupportSessionState, new: SupportSessionState) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def check_transition(current: SupportSessionState, new: SupportSessionState) -> None:
    """Raise ``protocol.illegal_transition`` unless ``current -> new`` is allowed."""
    if not can_transition(current, new):
        raise ProtocolError(
            ProtocolErrorCode.ILLEGAL_TRANSITION,
            f"a support session cannot go from {current} to {new}",
        )
