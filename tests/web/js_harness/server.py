"""A loopback static server for the browser client's interop tests: `/static/` is the web
console's static folder, `/harness/` this folder. Every response carries a CSP as strict as the
console's (`script-src 'self'`, `style-src 'self' 'nonce-…'`), with a fresh nonce that ``*.html``
pages get in place of ``{nonce}``. It does not wait for the web foundation, and it lets a test
serve a page of its own (``pages``) such as one with a ``session-data`` block.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HARNESS_DIR = Path(__file__).parent
STATIC_DIR = Path(__file__).parents[3] / "src" / "auxilio" / "server" / "web" / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}


def csp(nonce: str) -> str:
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; connect-src 'self' ws://127.0.0.1:*; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


@dataclass
class Harness:
    url: str
    # Extra pages by path ("/harness/live.html"): their text, with {nonce} replaced per response.
    pages: dict[str, str] = field(default_factory=dict)
    # JSON answers by path, for GET and POST (a stand-in for /api/v1 and /web/ws-token).
    api: dict[str, Any] = field(default_factory=dict)
    # Every POST as (path, JSON body, X-CSRF-Token header).
    posts: list[tuple[str, Any, str]] = field(default_factory=list)
    # (server URL, bearer token): other /api/v1 requests go to a real server as that person,
    # the way the console's pages reach it with their cookie.
    proxy: tuple[str, str] | None = None


def _resolve(path: str) -> Path | None:
    for prefix, root in (("/static/", STATIC_DIR), ("/harness/", HARNESS_DIR)):
        if path.startswith(prefix):
            target = (root / path[len(prefix) :]).resolve()
            if target.is_relative_to(root.resolve()) and target.is_file():
                return target
    return None


def _handler(harness: Harness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _json(self, answer: Any, status: int = HTTPStatus.OK) -> None:
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            harness.posts.append((path, body, self.headers.get("X-CSRF-Token", "")))
            if path not in harness.api and self._proxied("POST", body):
                return
            self._json(harness.api.get(path, {}))

        def _proxied(self, method: str, body: Any = None) -> bool:
            if harness.proxy is None or not self.path.startswith("/api/v1/"):
                return False
            server, token = harness.proxy
            answer = httpx.request(
                method, f"{server}{self.path}", json=body, timeout=30,
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            self._json(answer.json(), answer.status_code)
            return True

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in harness.api:
                self._json(harness.api[path])
                return
            if self._proxied("GET"):
                return
            nonce = secrets.token_urlsafe(16)
            if path in harness.pages:
                body = harness.pages[path].replace("{nonce}", nonce).encode()
                kind = _TYPES[".html"]
            else:
                target = _resolve(path)
                if target is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                body = target.read_bytes()
                kind = _TYPES.get(target.suffix, "application/octet-stream")
                if target.suffix == ".html":
                    body = body.replace(b"{nonce}", nonce.encode())
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", csp(nonce))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve_harness() -> Iterator[Harness]:
    harness = Harness(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(harness))
    harness.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield harness
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
