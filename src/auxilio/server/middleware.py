"""Pure ASGI middleware: request id, client address, body size and pace, security headers, log.

Every HTTP response carries the same security headers, set here once rather than per route:
the browser must not guess content types, send our URLs as referrers, frame our pages, or run
anything but the server's own scripts and styles. Every ``/api`` response is ``no-store``:
logins, tokens and recovery codes are among them, and a shared cache or the browser's history
must keep none of it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auxilio.server.context import RequestInfo, set_request

log = logging.getLogger("auxilio.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Swagger UI's stylesheet draws its icons as data: SVGs; nothing else needs more than 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
)
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000")


def security_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers set (replacing any a route set for the same name)."""
    extra = list(SECURITY_HEADERS)
    nonce = scope.get("state", {}).get("csp_nonce")
    if nonce:
        # Pages only: xterm.js injects <style> elements, allowed by this request's nonce (the
        # page passes it on); scripts stay 'self' alone.
        policy = CONTENT_SECURITY_POLICY.replace(
            "style-src 'self'", f"style-src 'self' 'nonce-{nonce}'"
        )
        extra = [(k, policy.encode() if k == b"content-security-policy" else v) for k, v in extra]
    if _is_api(scope["path"]):
        extra.append(_NO_STORE)
    if scope.get("scheme") == "https":
        extra.append(_HSTS)
    names = {name for name, _ in extra}
    return [(k, v) for k, v in headers if k.lower() not in names] + extra


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class _TooLarge(HTTPException):
    # An HTTPException, because FastAPI turns any other error raised while it reads the body
    # into 400 "error parsing the body"; this one it passes on to the 413 handler.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The body exceeds {limit} bytes.")


class _TooSlow(HTTPException):
    # A body that stops arriving would hold its connection and task for as long as the client
    # likes; uvicorn bounds the headers (server/serving.py), this bounds each wait for the body.
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"No part of the body arrived for {seconds:g} seconds.")


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": {}}})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_idle_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_idle_seconds = body_idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        client = scope.get("client")
        set_request(RequestInfo(request_id=request_id, client_addr=client[0] if client else None))
        scope.setdefault("state", {})["request_id"] = request_id
        if not _is_api(scope["path"]):
            # A fresh nonce per page request (request.state.csp_nonce), for style-src only.
            scope["state"]["csp_nonce"] = secrets.token_urlsafe(16)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._reject(scope, send, request_id, _TooLarge(self.max_body_bytes))
            return

        received = 0
        body_done = False
        started = time.perf_counter()
        status = 500

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # Past the body, receive() waits for the disconnect: no bound on that.
                return await receive()
            try:
                async with asyncio.timeout(self.body_idle_seconds):
                    message = await receive()
            except TimeoutError:
                raise _TooSlow(self.body_idle_seconds) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _TooLarge(self.max_body_bytes)
                body_done = not message.get("more_body", False)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = security_headers(scope, list(message.get("headers", [])))
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except (_TooLarge, _TooSlow) as exc:
            await self._reject(scope, send, request_id, exc)
            status = exc.status_code
        finally:
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "request_id": request_id,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )

    async def _reject(
        self, scope: Scope, send: Send, request_id: str, exc: _TooLarge | _TooSlow
    ) -> None:
        code = "payload_too_large" if isinstance(exc, _TooLarge) else "request_timeout"
        body = _error(code, exc.detail)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": exc.status_code,
                "headers": [
                    *security_headers(scope, headers),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the request id and other extras are carried as fields."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(*, json_logs: bool, level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if json_logs
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger("auxilio")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
