"""Connection timeouts of ``auxilio serve``, against a real uvicorn server on loopback.

No timing is asserted: each test waits (with a generous socket timeout, so a broken bound fails
instead of hanging) for the server to close a connection that a well-behaved client would not
have left in that state.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import Message, Receive, Scope, Send

from auxilio.server.app import create_app
from auxilio.server.serving import connection_options
from auxilio.server.settings import load_settings

GIVE_UP = 20.0  # seconds before a test calls the connection "never closed"


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def server_port(tmp_path: Path) -> Iterator[int]:
    settings = load_settings(
        data_dir=tmp_path, http_header_timeout_seconds=0.5, http_keep_alive_seconds=1
    )
    config = uvicorn.Config(
        _hello,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        **connection_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    pause = threading.Event()
    for _ in range(400):
        if server.started:
            break
        pause.wait(0.05)
    assert server.started, "uvicorn did not start"
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(GIVE_UP)


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP)
    return conn


def _closed_by_server(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes; raises TimeoutError if it never does."""
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received


def test_a_complete_request_is_answered(server_port: int) -> None:
    with _connect(server_port) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert _closed_by_server(conn).endswith(b"hello")


def test_a_connection_that_never_sends_headers_is_closed(server_port: int) -> None:
    with _connect(server_port) as conn:
        assert _closed_by_server(conn) == b""


def test_headers_trickled_without_end_are_cut_off(server_port: int) -> None:
    with _connect(server_port) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        assert _closed_by_server(conn) == b""


def test_a_kept_alive_connection_is_closed_when_idle(server_port: int) -> None:
    with _connect(server_port) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = _closed_by_server(conn)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello")


def test_the_second_request_on_a_connection_has_the_same_header_bound(server_port: int) -> None:
    with _connect(server_port) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        answer = _closed_by_server(conn)
    assert answer.count(b"HTTP/1.1 200") == 1


async def test_a_body_that_stops_arriving_is_answered_408(
    tmp_path: Path, database_url: str, signing_key: Ed25519PrivateKey
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=database_url, http_body_idle_seconds=0.2
    )
    app = create_app(settings, signing_key=signing_key)
    never = asyncio.Event()
    chunks = [{"type": "http.request", "body": b'{"email": "a@b.c", ', "more_body": True}]

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        await never.wait()  # the client went quiet half-way through its body
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login",
        "raw_path": b"/api/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"t")],
        "client": ("203.0.113.9", 5000),
        "server": ("t", 80),
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 408
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    assert (b"cache-control", b"no-store") in start["headers"]
