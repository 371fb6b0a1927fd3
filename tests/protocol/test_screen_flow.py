"""Flow control of the screen stream (protocol.screen_flow): the window bounds what is in
flight whatever the viewer acknowledges, and a keyframe follows a loss."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.screen_flow import ScreenFlow


def test_it_stops_sending_when_the_window_is_full_and_resumes_on_an_ack() -> None:
    flow = ScreenFlow(max_frames=2, max_fps=60)
    assert flow.may_send(0)
    assert flow.sent(size=100, keyframe=True, now_us=0) == 0
    assert flow.sent(size=100, keyframe=False, now_us=20_000) == 1
    assert not flow.may_send(10_000_000)
    with pytest.raises(RuntimeError):
        flow.sent(size=100, keyframe=False, now_us=10_000_000)
    flow.acked(seq=0, decode_us=0, now_us=30_000)
    assert flow.in_flight == 1
    assert flow.may_send(40_000)


def test_one_ack_covers_every_frame_before_it() -> None:
    flow = ScreenFlow(max_frames=3, max_fps=60)
    for at in (0, 20_000, 40_000):
        flow.sent(size=10, keyframe=False, now_us=at)
    flow.acked(seq=1, decode_us=0, now_us=50_000)
    assert (flow.in_flight, flow.in_flight_bytes) == (1, 10)


def test_the_byte_budget_holds_frames_back_but_never_the_first() -> None:
    flow = ScreenFlow(max_frames=3, max_bytes=1000, max_fps=60)
    flow.sent(size=5000, keyframe=True, now_us=0)  # alone in flight: allowed however large
    assert not flow.may_send(100_000)
    flow.acked(seq=0, decode_us=0, now_us=100_000)
    flow.sent(size=600, keyframe=False, now_us=200_000)
    assert flow.may_send(300_000)
    flow.sent(size=600, keyframe=False, now_us=300_000)
    assert not flow.may_send(400_000)


def test_it_paces_frames_at_the_maximum_rate() -> None:
    flow = ScreenFlow(max_frames=3, max_fps=10)
    flow.sent(size=1, keyframe=True, now_us=1_000_000)
    assert not flow.may_send(1_099_999)
    assert flow.may_send(1_100_000)


def test_the_pacing_wait_is_the_rest_of_the_frame_interval() -> None:
    flow = ScreenFlow(max_frames=3, max_fps=20)  # 50 ms between frames
    assert flow.pacing_wait_us(0) == 0
    flow.sent(size=10, keyframe=True, now_us=1_000_000)
    assert flow.pacing_wait_us(1_010_000) == 40_000
    assert flow.pacing_wait_us(1_050_000) == 0
    assert flow.pacing_wait_us(2_000_000) == 0


def test_the_rate_is_paced_from_the_start_of_each_capture_and_the_rtt_from_the_send() -> None:
    # Grabbing and encoding took 30 ms of the 50 ms interval: the next capture may begin
    # 50 ms after this one began, not 50 ms after it was sent.
    flow = ScreenFlow(max_frames=3, max_fps=20)
    flow.sent(size=10, keyframe=True, now_us=1_030_000, captured_us=1_000_000)
    assert not flow.may_send(1_049_999)
    assert flow.may_send(1_050_000)
    assert flow.pacing_wait_us(1_030_000) == 20_000
    assert flow.acked(seq=0, decode_us=0, now_us=1_040_000) == 10_000  # from the send
    # A capture time after the send (a caller's clock mix-up) is taken as the send.
    flow.sent(size=10, keyframe=False, now_us=2_000_000, captured_us=2_500_000)
    assert flow.pacing_wait_us(2_000_000) == 50_000


def test_the_round_trip_leaves_out_the_decode_time_and_is_smoothed() -> None:
    flow = ScreenFlow(max_frames=2, max_fps=60)
    flow.sent(size=1, keyframe=True, now_us=0)
    assert flow.acked(seq=0, decode_us=2_000, now_us=42_000) == 40_000
    assert flow.srtt_us == 40_000
    flow.sent(size=1, keyframe=False, now_us=100_000)
    assert flow.acked(seq=1, decode_us=0, now_us=120_000) == 20_000
    assert flow.srtt_us == (7 * 40_000 + 20_000) // 8
    assert flow.last_decode_us == 0


def test_a_keyframe_is_due_at_the_start_and_after_a_request_until_one_is_sent() -> None:
    flow = ScreenFlow(max_fps=60)
    assert flow.keyframe_due
    flow.sent(size=1, keyframe=False, now_us=0)
    assert flow.keyframe_due  # a delta frame does not satisfy it
    flow.sent(size=1, keyframe=True, now_us=20_000)
    assert not flow.keyframe_due
    flow.request_keyframe()
    assert flow.keyframe_due


def test_it_refuses_an_ack_for_a_frame_never_sent_or_already_acked() -> None:
    flow = ScreenFlow(max_fps=60)
    with pytest.raises(ProtocolError) as never:
        flow.acked(seq=0, decode_us=0, now_us=0)
    assert never.value.code == "protocol.invalid_field"
    flow.sent(size=1, keyframe=True, now_us=0)
    flow.acked(seq=0, decode_us=0, now_us=1)
    with pytest.raises(ProtocolError) as again:
        flow.acked(seq=0, decode_us=0, now_us=2)
    assert again.value.code == "protocol.invalid_field"
    assert flow.srtt_us == 1


def test_a_viewer_that_stops_acknowledging_shows_as_stalled() -> None:
    flow = ScreenFlow(max_fps=60)
    assert not flow.stalled(10**9, after_us=5_000_000)
    flow.sent(size=1, keyframe=True, now_us=1_000_000)
    assert not flow.stalled(5_999_999, after_us=5_000_000)
    assert flow.stalled(6_000_000, after_us=5_000_000)


def test_it_refuses_a_window_that_cannot_hold_a_frame() -> None:
    with pytest.raises(ValueError):
        ScreenFlow(max_frames=0)
    with pytest.raises(ValueError):
        ScreenFlow(max_fps=0)


# Each step: ("send", size) or ("ack", how far back from the newest sent seq, may be bogus)
# with a time step; the window must hold whatever the viewer does.
_steps = st.lists(
    st.tuples(
        st.sampled_from(["send", "ack", "keyframe"]),
        st.integers(min_value=1, max_value=400_000),
        st.integers(min_value=-2, max_value=5),
        st.integers(min_value=0, max_value=80_000),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(
    max_frames=st.integers(min_value=1, max_value=4),
    max_bytes=st.integers(min_value=1, max_value=1_000_000),
    steps=_steps,
)
def test_in_flight_never_exceeds_the_window_whatever_the_acks(
    max_frames: int, max_bytes: int, steps: list[tuple[str, int, int, int]]
) -> None:
    flow = ScreenFlow(max_frames=max_frames, max_bytes=max_bytes, max_fps=60)
    now = 0
    sent_sizes: dict[int, int] = {}
    acked_up_to = -1
    for kind, size, back, step in steps:
        now += step
        if kind == "send":
            if flow.may_send(now):
                before = flow.in_flight_bytes
                seq = flow.sent(size=size, keyframe=False, now_us=now)
                assert seq == len(sent_sizes)
                sent_sizes[seq] = size
                # The budget was not reached before this frame, or nothing was in flight.
                assert before < max_bytes or before == 0
            elif not flow.has_room():  # (otherwise only the frame rate held it back)
                with pytest.raises(RuntimeError):
                    flow.sent(size=size, keyframe=False, now_us=now)
        elif kind == "ack":
            seq = len(sent_sizes) - 1 - back
            valid = acked_up_to < seq < len(sent_sizes)
            if valid:
                assert flow.acked(seq=seq, decode_us=0, now_us=now) >= 0
                acked_up_to = seq
            elif seq >= 0:
                with pytest.raises(ProtocolError):
                    flow.acked(seq=seq, decode_us=0, now_us=now)
        else:
            flow.request_keyframe()
        assert flow.in_flight <= max_frames
        assert flow.in_flight == len(sent_sizes) - 1 - acked_up_to
        unacked = [sent_sizes[s] for s in range(acked_up_to + 1, len(sent_sizes))]
        assert flow.in_flight_bytes == sum(unacked)
        # Over the byte budget by at most the newest frame.
        if len(unacked) > 1:
            assert sum(unacked[:-1]) < max_bytes
