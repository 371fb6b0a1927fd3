from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auxilio.crypto.e2e import (
    COUNTER_SIZE,
    INFO_AGENT_TO_TECHNICIAN,
    E2ESession,
    Role,
    derive_session_keys,
)
from auxilio.crypto.errors import (
    E2EError,
    FrameOutOfOrder,
    FrameReplayed,
    FrameTampered,
    FrameTooLarge,
    FrameTruncated,
)
from auxilio.protocol.binary import HEADER_SIZE, MAX_FRAME_PLAINTEXT, ChannelId

Pair = tuple[E2ESession, E2ESession]


def _fresh_pair() -> Pair:
    keys = derive_session_keys(
        bytes(range(32)),
        support_session_id="ss-1",
        agent_public=b"a" * 32,
        technician_public=b"t" * 32,
    )
    return E2ESession(role=Role.AGENT, keys=keys), E2ESession(role=Role.TECHNICIAN, keys=keys)


def test_frames_round_trip_in_both_directions(sessions: Pair) -> None:
    agent, technician = sessions
    frame = agent.seal(ChannelId.TERMINAL, b"$ ls\r\n")
    assert technician.open(frame) == (ChannelId.TERMINAL, b"$ ls\r\n")
    assert agent.open(technician.seal(ChannelId.CHAT, "¿Ves el error?".encode())) == (
        ChannelId.CHAT,
        "¿Ves el error?".encode(),
    )


def test_the_relay_sees_only_the_header_and_the_counter(sessions: Pair) -> None:
    agent, _ = sessions
    frame = agent.seal(ChannelId.TERMINAL, b"secret output")
    assert frame[:HEADER_SIZE] == bytes((1, ChannelId.TERMINAL, 0))
    assert frame[HEADER_SIZE : HEADER_SIZE + COUNTER_SIZE] == bytes(8)
    assert b"secret" not in frame


def test_each_channel_counts_its_own_frames(sessions: Pair) -> None:
    agent, technician = sessions
    agent.seal(ChannelId.CHAT, b"one")
    terminal = agent.seal(ChannelId.TERMINAL, b"first terminal frame")
    assert terminal[HEADER_SIZE : HEADER_SIZE + COUNTER_SIZE] == bytes(8)
    assert technician.open(terminal)[1] == b"first terminal frame"


def test_it_rejects_a_replayed_frame(sessions: Pair) -> None:
    agent, technician = sessions
    frame = agent.seal(ChannelId.TERMINAL, b"rm -rf build")
    technician.open(frame)
    with pytest.raises(FrameReplayed) as caught:
        technician.open(frame)
    assert caught.value.code == "e2e.replayed"


def test_it_rejects_a_reordered_frame(sessions: Pair) -> None:
    agent, technician = sessions
    first, second = agent.seal(ChannelId.CHAT, b"1"), agent.seal(ChannelId.CHAT, b"2")
    with pytest.raises(FrameOutOfOrder) as caught:
        technician.open(second)
    assert caught.value.code == "e2e.out_of_order"
    # Nothing was consumed by the rejected frame: the stream continues in order.
    assert technician.open(first)[1] == b"1"
    assert technician.open(second)[1] == b"2"


def test_it_rejects_the_frame_after_a_dropped_one(sessions: Pair) -> None:
    agent, technician = sessions
    agent.seal(ChannelId.CHAT, b"dropped by the relay")
    with pytest.raises(FrameOutOfOrder):
        technician.open(agent.seal(ChannelId.CHAT, b"next"))


def test_it_rejects_an_altered_frame(sessions: Pair) -> None:
    agent, technician = sessions
    frame = bytearray(agent.seal(ChannelId.TERMINAL, b"echo hi"))
    frame[-20] ^= 0x01
    with pytest.raises(FrameTampered) as caught:
        technician.open(bytes(frame))
    assert caught.value.code == "e2e.tampered"


def test_it_rejects_a_frame_moved_to_another_channel(sessions: Pair) -> None:
    agent, technician = sessions
    frame = bytearray(agent.seal(ChannelId.TERMINAL, b"echo hi"))
    frame[1] = ChannelId.CHAT
    with pytest.raises(FrameTampered):
        technician.open(bytes(frame))


def test_it_rejects_a_truncated_frame(sessions: Pair) -> None:
    agent, technician = sessions
    frame = agent.seal(ChannelId.TERMINAL, b"echo hi")
    with pytest.raises(FrameTruncated) as caught:
        technician.open(frame[:20])
    assert caught.value.code == "e2e.truncated"


def test_a_frame_shortened_but_still_long_enough_fails_authentication(sessions: Pair) -> None:
    agent, technician = sessions
    frame = agent.seal(ChannelId.TERMINAL, b"echo a much longer line")
    with pytest.raises(FrameTampered):
        technician.open(frame[:-1])


def test_it_rejects_a_frame_echoed_back_to_its_sender(sessions: Pair) -> None:
    agent, _ = sessions
    with pytest.raises(FrameTampered):
        agent.open(agent.seal(ChannelId.TERMINAL, b"reflected"))


def test_it_rejects_a_frame_from_another_support_session(sessions: Pair) -> None:
    _, technician = sessions
    other_agent, _ = _fresh_pair()
    other_agent.seal(ChannelId.CONTROL_E2E, b"keep counters aligned")
    with pytest.raises(FrameTampered):
        technician.open(other_agent.seal(ChannelId.CONTROL_E2E, b"x"))


def test_it_refuses_to_seal_more_than_the_maximum_frame(sessions: Pair) -> None:
    agent, _ = sessions
    agent.seal(ChannelId.FILES, bytes(MAX_FRAME_PLAINTEXT))
    with pytest.raises(FrameTooLarge) as caught:
        agent.seal(ChannelId.FILES, bytes(MAX_FRAME_PLAINTEXT + 1))
    assert caught.value.code == "e2e.too_large"


def test_it_rejects_an_oversized_incoming_frame(sessions: Pair) -> None:
    _, technician = sessions
    with pytest.raises(FrameTooLarge):
        technician.open(bytes((1, ChannelId.FILES, 0)) + bytes(MAX_FRAME_PLAINTEXT + 100))


def test_the_two_directions_use_different_keys() -> None:
    keys = derive_session_keys(
        bytes(32), support_session_id="s", agent_public=b"a" * 32, technician_public=b"t" * 32
    )
    assert keys.agent_to_technician != keys.technician_to_agent
    assert INFO_AGENT_TO_TECHNICIAN == b"auxilio e2e v1 agent->technician"


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_bit_flip_in_a_sealed_frame_is_rejected(data: st.DataObject) -> None:
    agent, technician = _fresh_pair()
    plaintext = data.draw(st.binary(max_size=64))
    frame = bytearray(agent.seal(ChannelId.TERMINAL, plaintext))
    bit = data.draw(st.integers(min_value=0, max_value=len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(E2EError):
        technician.open(bytes(frame))
    # And the untouched frame still opens: the rejected one changed nothing.
    frame[bit // 8] ^= 1 << (bit % 8)
    assert technician.open(bytes(frame)) == (ChannelId.TERMINAL, plaintext)
