"""The server keeps time and notices lost peers: warnings, the hard stop, the agent's grace
period, a restart; and the relay's limits: oversized frames, backpressure, stuck peers."""

from __future__ import annotations

import asyncio
import os

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.protocol.binary import MAX_BINARY_FRAME_BYTES
from auxilio.server.relay.hub import Peer, topic
from tests.server.support_sessions.conftest import ServerFactory, World, policy_text
from tests.server.support_sessions.flow import active
from tests.server.support_sessions.peers import FakeAgent


def _client(live: object) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=live.url, timeout=20)  # type: ignore[attr-defined]
    client.live = live  # type: ignore[attr-defined]
    return client


async def test_the_time_limit_warns_both_peers_then_ends_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy_text(max_duration="3s", warn_before="2s"))
    running = await active(http, world, signing_key, handshake=False)
    for peer in (running.agent, running.technician):
        warning = await peer.expect("session.warning")
        assert warning.remaining_seconds <= 2
    for peer in (running.agent, running.technician):
        end = await peer.expect("session.end")
        assert (end.ended_by, end.reason) == ("server", "time_limit")
    actions = await world.actions(running.sid)
    assert actions[-2:] == ["support_session:warning:sent", "support_session:session:ended"]


async def test_an_agent_that_does_not_come_back_ends_the_session_as_device_lost(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)
    await running.agent.close()
    await running.technician.expect_state("agent_lost")
    end = await running.technician.expect("session.end")
    assert (end.reason, end.detail) == ("connection_lost", "device_lost")
    row = await world.row(running.sid)
    assert (row.state, row.ended_by) == ("ended", "server")


async def test_a_restarted_server_ends_its_unfinished_sessions_and_tells_the_agent(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey
) -> None:
    first = start_server()
    async with _client(first) as http:
        running = await active(http, world, signing_key, handshake=False)
    first.stop()
    assert (await world.row(running.sid)).state == "active"

    second = start_server()
    row = await world.wait_for_state(running.sid, "ended")
    assert (row.end_reason, row.end_detail) == ("connection_lost", "server_restart")
    again = FakeAgent(second.url, device_key=running.agent.device_key)
    await again.connect()
    await again.authenticate()
    end = await again.expect("session.end")
    assert end.support_session_id == running.sid and end.detail == "server_restart"
    await again.close()


async def test_an_oversized_frame_ends_the_session_with_a_protocol_error(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)
    await running.technician.ws.send(b"\x01\x01\x00" + bytes(MAX_BINARY_FRAME_BYTES))
    for peer in (running.agent, running.technician):
        end = await peer.expect("session.end")
        assert (end.reason, end.detail) == ("protocol_error", "protocol.too_large")
    assert (await world.row(running.sid)).ended_by == "technician"


async def test_a_reader_that_does_not_read_blocks_the_sender_and_queues_stay_bounded(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey
) -> None:
    live = start_server(relay_queue_frames=8, relay_queue_bytes=256 * 1024,
                        relay_stuck_seconds=4.0)
    async with _client(live) as http:
        running = await active(http, world, signing_key)
        # The agent stops reading: its socket and client buffers fill, then the relay's queue.
        assert running.agent._reader is not None
        running.agent._reader.cancel()
        running.agent.ws.transport.pause_reading()
        hub = live.app.state.support_sessions.hub  # type: ignore[attr-defined]
        # Random like ciphertext: zeros would shrink to nothing under permessage-deflate.
        frame = b"\x01\x01\x00" + os.urandom(128 * 1024)
        blocked = None
        for _ in range(2000):
            sending = asyncio.create_task(running.technician.ws.send(frame))
            done, _pending = await asyncio.wait({sending}, timeout=0.5)
            if not done:
                blocked = sending
                break
            sending.result()  # a send that failed would not prove anything
        handlers = hub.bus._topics[topic(running.sid, Peer.AGENT)]
        queue = handlers[0].__self__.conn.queue
        assert blocked is not None, "the sender was never slowed down"
        assert queue.peak_frames <= 8
        assert queue.peak_bytes <= 256 * 1024 + len(frame)
        # Stuck past relay_stuck_seconds: the agent is dropped, the sender flows again, and the
        # session ends once the grace period passes without the agent.
        await asyncio.wait_for(blocked, timeout=15)
        end = await running.technician.expect("session.end", within=15)
        assert (end.reason, end.detail) == ("connection_lost", "device_lost")
