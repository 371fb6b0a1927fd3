"""Guessing over WebSockets is rate-limited (issue 7 §8): join codes tried connection after
connection, and connections that never authenticate, per client address and node-wide."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.protocol.frames import SessionJoin
from tests.server.support_sessions.conftest import ServerFactory, World
from tests.server.support_sessions.flow import request
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, Peer, mid


def _client(live: object) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=live.url, timeout=20)  # type: ignore[attr-defined]
    client.live = live  # type: ignore[attr-defined]
    return client


async def _agent(url: str) -> FakeAgent:
    agent = FakeAgent(url)
    await agent.connect()
    await agent.authenticate()
    return agent


async def test_join_guesses_over_the_rate_are_refused_across_reconnections(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey
) -> None:
    live = start_server(rate_join_per_address_per_minute=3)
    async with _client(live) as http:
        created = (await request(http, world, FakeTechnician(live.url))).json()
    # Each connection may try five codes; a guesser reconnects. The bucket is per address.
    for _ in range(3):
        guesser = await _agent(live.url)
        await guesser.send(SessionJoin(id=mid(), join_code="AAA-AAA-AAA"))
        await guesser.expect_error("join_code.invalid")
        await guesser.close()
    guesser = await _agent(live.url)
    # Even the right code: over the limit nothing is looked up.
    await guesser.send(SessionJoin(id=mid(), join_code=created["join_code"]))
    refused = await guesser.expect_error("join_code.rate_limited")
    assert "retry in" in refused.message
    await guesser.closed.wait()
    assert guesser.close_code == 1008
    # Nothing was spent: the right code was never looked up, the session still waits for it.
    assert (await world.row(created["id"])).state == "requested"


async def _refused_at_once(peer: Peer) -> None:
    await peer.connect()
    refused = await peer.expect_error("auth.rate_limited")
    assert "retry in" in refused.message
    await peer.closed.wait()
    assert peer.close_code == 1008
    assert len(peer.frames) == 1  # no server.hello: it could not even begin to authenticate


async def test_unauthenticated_connections_over_the_rate_are_closed_before_authentication(
    start_server: ServerFactory, world: World
) -> None:
    live = start_server(rate_ws_per_address_per_minute=2)
    first = await _agent(live.url)
    second = FakeTechnician(live.url)
    await second.connect()
    await _refused_at_once(FakeAgent(live.url))
    await _refused_at_once(FakeTechnician(live.url))
    # The ones admitted before are served as usual.
    assert first.server_fingerprint
    assert not second.closed.is_set()


async def test_the_node_wide_rate_holds_whatever_the_address(
    start_server: ServerFactory, world: World
) -> None:
    # One test client has one address, so the node-wide bucket is the smaller one here.
    live = start_server(rate_ws_per_address_per_minute=100, rate_ws_global_per_minute=1)
    await _agent(live.url)
    await _refused_at_once(FakeAgent(live.url))
