"""The agent's WebSocket connection to the broker: set-up, heartbeats, reconnection.

Set-up (docs/support-sessions.md §2): ``agent.hello`` -> ``server.hello`` (the server key is
pinned on first contact and must match afterwards) -> ``agent.auth``. After that the connection is
a stream of control messages and binary frames; ``receive`` hands them over one at a time.

A dropped connection is retried a bounded number of times with exponential backoff and jitter
(many agents dropped by one server restart must not all come back in the same second).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

import auxilio
from auxilio.agent.capability_discovery import available_capabilities
from auxilio.agent.errors import AgentError, ConnectionFailed
from auxilio.agent.state import AgentState, PinnedServer
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import decode_ed25519_public_key, encode_public_key, fingerprint
from auxilio.crypto.signing import sign_agent_challenge
from auxilio.protocol.binary import MAX_BINARY_FRAME_BYTES
from auxilio.protocol.frames import (
    AgentAuth,
    AgentHeartbeat,
    AgentHello,
    ControlMessage,
    ErrorMessage,
    ServerHello,
    encode_message,
    parse_message,
)
from auxilio.protocol.version import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION

HEARTBEAT_SECONDS = 15.0
HELLO_TIMEOUT_SECONDS = 15.0
RECONNECT_TRIES = 5

Incoming = ControlMessage | bytes
Notify = Callable[[str], None]


def new_id() -> str:
    return os.urandom(9).hex()


@dataclass(frozen=True, slots=True)
class ServerAddress:
    origin: str  # scheme://host:port, the key under which the server key is pinned
    websocket_url: str
    http_url: str
    secure: bool


def server_address(url: str) -> ServerAddress:
    """``http(s)://host:port[/prefix]`` (or ``ws(s)://``) -> the ``/ws/agent`` endpoint."""
    parts = urlsplit(url.strip())
    schemes = {"http": ("ws", "http"), "https": ("wss", "https"),
               "ws": ("ws", "http"), "wss": ("wss", "https")}  # fmt: skip
    if parts.scheme not in schemes or not parts.hostname:
        raise AgentError("server.bad_url", f"{url!r} is not an http(s):// or ws(s):// URL")
    ws_scheme, http_scheme = schemes[parts.scheme]
    port = parts.port or (443 if http_scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}"
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/ws/agent"):
        prefix = prefix[: -len("/ws/agent")]
    return ServerAddress(
        origin=f"{http_scheme}://{netloc}",
        websocket_url=urlunsplit((ws_scheme, netloc, f"{prefix}/ws/agent", "", "")),
        http_url=urlunsplit((http_scheme, netloc, prefix, "", "")),
        secure=http_scheme == "https",
    )


def backoff_delays(
    tries: int = RECONNECT_TRIES, *, base: float = 1.0, cap: float = 15.0
) -> Iterator[float]:
    """1, 2, 4, 8, 15 s (about 30 s in all), each shortened by up to half at random."""
    for attempt in range(tries):
        delay = min(cap, base * 2**attempt)
        yield random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not a secret


def _parse_server_key(body: bytes, content_type: str) -> Ed25519PublicKey:
    if body.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(body)
        if not isinstance(key, Ed25519PublicKey):
            raise AgentError("server.bad_key", "the server key is not an Ed25519 key")
        return key
    data = json.loads(body)
    if not isinstance(data, dict):
        raise AgentError("server.bad_key", "GET /api/v1/server-key did not return an object")
    for name in ("public_key", "server_public_key", "key"):
        value = data.get(name)
        if isinstance(value, str):
            if value.lstrip().startswith("-----BEGIN"):
                return _parse_server_key(value.encode(), "application/x-pem-file")
            return decode_ed25519_public_key(value)
    raise AgentError("server.bad_key", f"no public key in the server-key answer ({content_type})")


def fetch_server_key(address: ServerAddress, context: ssl.SSLContext | None) -> Ed25519PublicKey:
    """``GET /api/v1/server-key`` (first contact only; the answer is then pinned)."""
    request = urllib.request.Request(  # noqa: S310 - scheme is http(s), checked by server_address
        f"{address.http_url}/api/v1/server-key", headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as answer:  # noqa: S310
            body = answer.read(64 * 1024)
            content_type = answer.headers.get("Content-Type", "")
    except OSError as exc:
        raise ConnectionFailed("server.unreachable", f"cannot read the server key: {exc}") from exc
    try:
        return _parse_server_key(body, content_type)
    except (ValueError, CryptoError) as exc:
        raise AgentError("server.bad_key", f"unreadable server key: {exc}") from exc


class ConnectionLost(Exception):
    """The WebSocket closed; the caller may ``reconnect``."""


class Link(Protocol):
    """What the session needs of the connection (``AgentConnection``; a fake in unit tests)."""

    async def send(self, message: ControlMessage) -> None: ...
    async def send_binary(self, frame: bytes) -> None: ...
    async def receive(self) -> Incoming: ...
    async def reconnect(self) -> None: ...
    async def close(self) -> None: ...


class AgentConnection:
    def __init__(
        self,
        address: ServerAddress,
        state: AgentState,
        *,
        notify: Notify,
        ca_file: str | None = None,
        device_id: str | None = None,
    ) -> None:
        """``device_id``: the enrolled device's id, said in ``agent.hello`` (the unattended
        service, agent/daemon.py); None for an attended join, which the server must not take
        for the enrolled device's connection (docs/unattended.md)."""
        self.address = address
        self._device_id = device_id
        self._state = state
        self._notify = notify
        self._ssl: ssl.SSLContext | None = None
        if address.secure:
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self._socket: ClientConnection | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.pinned: PinnedServer | None = None

    async def open(self) -> PinnedServer:
        """Connect, check the server key against the pin (pin it on first contact), answer the
        challenge. Raises ``ServerKeyChanged``, ``AgentError`` or ``ConnectionFailed``."""
        try:
            self._socket = await connect(
                self.address.websocket_url,
                ssl=self._ssl,
                # Room for one maximal E2E frame; the E2E layer then reports e2e.too_large.
                max_size=2 * MAX_BINARY_FRAME_BYTES,
                open_timeout=HELLO_TIMEOUT_SECONDS,
                # Our own heartbeats carry liveness; websocket pings would only duplicate them.
                ping_interval=None,
                # Frames are ciphertext, which does not compress: deflate would only burn CPU
                # on both ends (docs/adr/0003).
                compression=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionFailed(
                "server.unreachable", f"cannot connect to {self.address.websocket_url}: {exc}"
            ) from exc
        await self.send(
            AgentHello(
                id=new_id(),
                device_id=self._device_id,
                device_public_key=encode_public_key(self._state.device_public_key),
                agent_version=auxilio.__version__,
                platform=f"{platform.system()} {platform.release()} ({platform.machine()})"[:200],
                protocol_version=PROTOCOL_VERSION,
                min_protocol_version=MIN_PROTOCOL_VERSION,
                capabilities=available_capabilities(),
            )
        )
        hello = await self._expect_hello()
        self.pinned = await self._check_server_key(hello)
        signature = sign_agent_challenge(
            self._state.device_key,
            challenge=hello.challenge,
            server_fingerprint=hello.server_fingerprint,
        )
        await self.send(AgentAuth(id=new_id(), signature=signature))
        self._heartbeat = asyncio.create_task(self._beat())
        return self.pinned

    async def _expect_hello(self) -> ServerHello:
        try:
            message = await asyncio.wait_for(self.receive(), HELLO_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionLost) as exc:
            raise ConnectionFailed("server.no_hello", "the server did not answer") from exc
        if isinstance(message, ErrorMessage):
            raise AgentError(message.code, message.message)
        if not isinstance(message, ServerHello):
            raise AgentError("protocol.unexpected", "the server did not start with server.hello")
        if not MIN_PROTOCOL_VERSION <= message.protocol_version <= PROTOCOL_VERSION:
            raise AgentError(
                "protocol.unsupported_version",
                f"the server chose protocol version {message.protocol_version}",
            )
        return message

    async def _check_server_key(self, hello: ServerHello) -> PinnedServer:
        origin = self.address.origin
        pinned = self._state.check_pin(origin, hello.server_fingerprint)
        if pinned is not None:
            self._notify(f"Server key matches the pinned key: {pinned.fingerprint}")
            return pinned
        key = await asyncio.to_thread(fetch_server_key, self.address, self._ssl)
        if fingerprint(key) != hello.server_fingerprint:
            raise AgentError(
                "server.key_mismatch",
                "the key served at /api/v1/server-key is not the one the server presents",
            )
        self._notify(f"First contact with {origin}.")
        self._notify(f"Server fingerprint: {fingerprint(key)}")
        self._notify("Pinned the server key: a different key will be refused from now on.")
        return self._state.pin(origin, key)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.send(AgentHeartbeat(id=new_id(), sent_at=datetime.now(UTC)))
            except ConnectionLost:
                return

    async def send(self, message: ControlMessage) -> None:
        await self._send(encode_message(message))

    async def send_binary(self, frame: bytes) -> None:
        await self._send(frame)

    async def _send(self, data: str | bytes) -> None:
        if self._socket is None:
            raise ConnectionLost("not connected")
        try:
            await self._socket.send(data)
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc

    async def receive(self) -> Incoming:
        """The next control message (parsed) or binary frame (opaque). ``ProtocolError`` for a
        text frame that does not follow the contract; ``ConnectionLost`` when closed."""
        if self._socket is None:
            raise ConnectionLost("not connected")
        try:
            data = await self._socket.recv()
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc
        if isinstance(data, bytes):
            return data
        return parse_message(data)

    async def reconnect(self, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Bounded retries with backoff; the pinned key is checked again on every connection."""
        await self.close()
        last: Exception | None = None
        for attempt, delay in enumerate(backoff_delays(), start=1):
            self._notify(f"Connection lost; trying again in {delay:.0f} s ({attempt}/5).")
            await sleep(delay)
            try:
                await self.open()
            except ConnectionFailed as exc:
                last = exc
                continue
            self._notify("Connected again.")
            return
        raise ConnectionFailed("server.unreachable", f"gave up reconnecting: {last}")

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close()
