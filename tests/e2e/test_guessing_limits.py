"""Guessing against a real ``auxilio serve`` (issue 7 §8): join codes tried over connection after
connection are cut off, and ``X-Forwarded-For`` from a local client does not reset the count."""

from __future__ import annotations

import httpx
import pytest

from auxilio.protocol.frames import SessionJoin
from tests.server.support_sessions.peers import FakeAgent, close_all, mid

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_env() -> dict[str, str]:
    return {
        "AUXILIO_RATE_JOIN_PER_ADDRESS_PER_MINUTE": "5",
        "AUXILIO_RATE_LOGIN_PER_ADDRESS_PER_MINUTE": "3",
    }


async def _guess(url: str) -> str:
    """One guess on a fresh connection, as a guessing script does; the error code it got."""
    agent = FakeAgent(url)
    try:
        await agent.connect()
        await agent.authenticate()
        await agent.send(SessionJoin(id=mid(), join_code="AAA-AAA-AAA"))
        error = await agent.expect("error")
        return str(error.code)
    finally:
        await agent.close()


async def test_join_guesses_from_one_address_are_cut_off(server: str) -> None:
    try:
        codes = [await _guess(server) for _ in range(12)]
    finally:
        await close_all()
    # Five a minute: the first five are looked up; one more may have refilled while this ran.
    assert codes[:5] == ["join_code.invalid"] * 5
    assert codes.count("join_code.invalid") <= 6
    assert codes[-1] == "join_code.rate_limited"


async def test_a_spoofed_forwarded_for_does_not_reset_the_login_limit(server: str) -> None:
    body = {"email": "nobody@example.test", "password": "wrong wrong wrong"}
    statuses = []
    async with httpx.AsyncClient(base_url=server, timeout=20) as client:
        for n in range(6):
            response = await client.post(
                "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": f"198.51.100.{n}"}
            )
            statuses.append(response.status_code)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[-1] == 429
