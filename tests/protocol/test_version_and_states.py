from __future__ import annotations

import itertools

import pytest

from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.states import (
    FINAL_STATES,
    SupportSessionState,
    can_transition,
    check_transition,
)
from auxilio.protocol.version import PROTOCOL_VERSION, negotiate_version

S = SupportSessionState


def test_peers_speaking_the_same_version_agree_on_it() -> None:
    assert negotiate_version(peer_max=PROTOCOL_VERSION, peer_min=1) == PROTOCOL_VERSION


def test_the_highest_common_version_is_chosen() -> None:
    assert negotiate_version(peer_max=5, peer_min=1, local_max=3, local_min=1) == 3
    assert negotiate_version(peer_max=2, peer_min=1, local_max=3, local_min=1) == 2


@pytest.mark.parametrize(("peer_max", "peer_min"), [(9, 4), (1, 1)])
def test_it_refuses_peers_without_a_common_version(peer_max: int, peer_min: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        negotiate_version(peer_max=peer_max, peer_min=peer_min, local_max=3, local_min=2)
    assert caught.value.code == "protocol.unsupported_version"


def test_it_refuses_an_inverted_version_range() -> None:
    with pytest.raises(ProtocolError) as caught:
        negotiate_version(peer_max=1, peer_min=2)
    assert caught.value.code == "protocol.invalid_field"


def test_the_happy_path_is_allowed() -> None:
    path = [S.REQUESTED, S.AWAITING_CONSENT, S.ACTIVE, S.ENDED]
    for current, new in itertools.pairwise(path):
        check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.REQUESTED, S.ACTIVE),  # never active without consent
        (S.DENIED, S.AWAITING_CONSENT),
        (S.ENDED, S.ACTIVE),
        (S.ACTIVE, S.AWAITING_CONSENT),
        (S.AWAITING_CONSENT, S.DENIED),
    ],
)
def test_it_refuses_an_illegal_transition(
    current: SupportSessionState, new: SupportSessionState
) -> None:
    assert not can_transition(current, new)
    with pytest.raises(ProtocolError) as caught:
        check_transition(current, new)
    assert caught.value.code == "protocol.illegal_transition"


def test_refusals_and_the_end_are_final() -> None:
    assert {S.ENDED, S.DENIED, S.REJECTED, S.EXPIRED} == FINAL_STATES
