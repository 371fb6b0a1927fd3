"""Token buckets against guessing (issue 7 §8): the bucket itself on a hand-driven clock, and
the login route answering 429 ``rate_limited`` before it does any work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from auxilio.server.app import create_app
from auxilio.server.identity.ratelimit import (
    Limited,
    MemoryRateLimiter,
    Rate,
    RateLimits,
    address_key,
)
from auxilio.server.settings import Settings
from tests.factories import make_org, make_user
from tests.server.identity.helpers import LOGIN, row_counts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_bucket_allows_its_burst_then_refuses_with_the_wait_and_refills() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    rate = Rate(per_minute=3)
    assert [await limiter.take("k", rate) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.take("k", rate) == pytest.approx(20.0)
    clock.now += 10
    # A refused attempt spends nothing: half a token has come back, half is still missing.
    assert await limiter.take("k", rate) == pytest.approx(10.0)
    clock.now += 10
    assert await limiter.take("k", rate) == 0.0
    assert await limiter.take("other", rate) == 0.0


async def test_a_bucket_never_holds_more_than_its_burst_however_long_it_rested() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    rate = Rate(per_minute=2)
    clock.now += 86400
    assert [await limiter.take("k", rate) for _ in range(3)][2] > 0


async def test_the_number_of_buckets_kept_is_bounded() -> None:
    limiter = MemoryRateLimiter(clock=Clock(), max_buckets=100)
    for n in range(1000):
        await limiter.take(f"addr:{n}", Rate(per_minute=1))
    assert len(limiter._buckets) == 100


def _limits(settings: Settings, **rates: float) -> RateLimits:
    return RateLimits(settings.model_copy(update=rates), MemoryRateLimiter(clock=Clock()))


async def test_one_address_over_its_limit_does_not_use_up_everyone_elses(
    settings: Settings,
) -> None:
    limits = _limits(settings, rate_join_per_address_per_minute=2, rate_join_global_per_minute=5)
    waits = [await limits.check(Limited.JOIN, "198.51.100.1") for _ in range(50)]
    assert waits[:2] == [0.0, 0.0] and all(w > 0 for w in waits[2:])
    assert [await limits.check(Limited.JOIN, f"198.51.100.{n}") for n in (2, 3, 4)] == [0.0] * 3
    # The node-wide bucket (5) is now empty: a fresh address is refused too.
    assert await limits.check(Limited.JOIN, "198.51.100.9") > 0
    # Other kinds have buckets of their own.
    assert await limits.check(Limited.LOGIN, "198.51.100.1") == 0.0


@pytest.mark.parametrize(
    ("addr", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4(addr: str | None, key: str) -> None:
    assert address_key(addr) == key


async def test_rotating_through_an_ipv6_64_does_not_escape_the_limit(settings: Settings) -> None:
    limits = _limits(settings, rate_join_per_address_per_minute=2)
    waits = [await limits.check(Limited.JOIN, f"2001:db8::{n:x}") for n in range(1, 5)]
    assert waits[:2] == [0.0, 0.0] and all(w > 0 for w in waits[2:])
    assert await limits.check(Limited.JOIN, "2001:db8:0:1::1") == 0.0


@pytest.fixture
async def limited_app(settings: Settings, signing_key: Ed25519PrivateKey) -> AsyncIterator[FastAPI]:
    tight = settings.model_copy(update={"rate_login_per_address_per_minute": 3})
    application = create_app(tight, signing_key=signing_key)
    async with application.router.lifespan_context(application):
        yield application


def _client(app: FastAPI, addr: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(addr, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_logins_over_the_rate_get_429_rate_limited_and_write_nothing(
    limited_app: FastAPI,
) -> None:
    org = await make_org(limited_app)
    person = await make_user(limited_app, org)
    body = {"email": person.user.email, "password": "not the password at all"}
    async with _client(limited_app, "203.0.113.50") as client:
        for _ in range(3):
            assert (await client.post(LOGIN, json=body)).status_code == 401
        before = await row_counts(limited_app)
        refused = await client.post(LOGIN, json=body)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        # Neither a failure counter nor an audit row: the attempt never reached the login.
        assert await row_counts(limited_app) == before
    async with _client(limited_app, "203.0.113.51") as other:
        assert (await other.post(LOGIN, json=body)).status_code == 401
