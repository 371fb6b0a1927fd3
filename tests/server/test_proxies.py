"""Forwarded headers are believed only from ``AUXILIO_TRUSTED_PROXIES`` (issue 7 §8).

uvicorn's default believes ``X-Forwarded-For`` from 127.0.0.1, so any local client could choose
the address that the lockout counts and reset it at will. The server here runs in uvicorn with
the options ``auxilio serve`` passes (``proxy_options``), on a real loopback socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import select

from auxilio.server.app import create_app
from auxilio.server.commands import proxy_options
from auxilio.server.identity.models import LoginThrottle
from auxilio.server.settings import Settings, load_settings

SPOOFED = "203.0.113.99"


@contextmanager
def serving(settings: Settings, signing_key: Ed25519PrivateKey) -> Iterator[Any]:
    app = create_app(settings, signing_key=signing_key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **proxy_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield app, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


async def _address_keys(app: Any) -> set[str]:
    async with app.state.sessionmaker() as db:
        keys = (await db.execute(select(LoginThrottle.key))).scalars()
        return {k for k in keys if k.startswith("addr:")}


async def _fail_login(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": "nobody@example.test", "password": "wrong wrong wrong"},
            headers={"X-Forwarded-For": SPOOFED},
        )
    assert response.status_code == 401, response.text


async def test_a_local_client_cannot_choose_its_address_by_default(
    settings: Settings, signing_key: Ed25519PrivateKey
) -> None:
    assert settings.trusted_proxies == ""
    with serving(settings, signing_key) as (app, url):
        await _fail_login(url)
        assert await _address_keys(app) == {"addr:127.0.0.1"}


async def test_a_configured_proxy_is_believed(
    settings: Settings, signing_key: Ed25519PrivateKey
) -> None:
    trusting = settings.model_copy(update={"trusted_proxies": "10.0.0.0/8, 127.0.0.1"})
    with serving(trusting, signing_key) as (app, url):
        await _fail_login(url)
        assert await _address_keys(app) == {f"addr:{SPOOFED}"}


def test_serve_turns_forwarded_headers_off_unless_proxies_are_named() -> None:
    assert proxy_options(Settings()) == {"proxy_headers": False}
    named = Settings(trusted_proxies="192.0.2.1,2001:db8::/32")
    assert proxy_options(named) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["192.0.2.1", "2001:db8::/32"],
    }


@pytest.mark.parametrize("bad", ["*", "proxy.example.org", "10.0.0.0/8, nonsense"])
def test_a_trusted_proxy_that_is_not_an_address_is_refused_clearly(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUXILIO_TRUSTED_PROXIES", bad)
    with pytest.raises(ValidationError, match="is not an IP address or network"):
        load_settings()
