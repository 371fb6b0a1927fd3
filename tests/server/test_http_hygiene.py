"""HTTP hygiene: security headers on every response, no-store on the API, local API docs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.server.app import create_app
from auxilio.server.middleware import CONTENT_SECURITY_POLICY
from auxilio.server.settings import load_settings
from tests.factories import PASSWORD, make_org, make_user

EVERY_RESPONSE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
# Pages (not /api) add one fresh nonce to style-src, for xterm.js's <style> elements.
_NONCE = re.compile(r" 'nonce-[A-Za-z0-9_-]{22}'")


def _assert_hygienic(response: httpx.Response) -> None:
    for name, value in EVERY_RESPONSE.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    policy = response.headers["content-security-policy"]
    assert _NONCE.sub("", policy, count=1) == CONTENT_SECURITY_POLICY, response.request.url
    assert len(_NONCE.findall(policy)) == (0 if response.request.url.path.startswith("/api/")
                                           else 1), policy  # fmt: skip
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_the_content_security_policy_allows_only_the_servers_own_scripts() -> None:
    directives = dict(
        d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";") if d.strip()
    )
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/api/v1/me", 401),
        ("GET", "/api/v1/no-such-route", 404),
        ("GET", "/no-such-page", 404),
        ("GET", "/openapi.json", 200),
        ("GET", "/docs", 200),
        ("GET", "/static/docs.js", 200),
        ("DELETE", "/healthz", 405),
    ],
)
async def test_every_kind_of_response_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    _assert_hygienic(response)
    if path.startswith("/api/"):
        assert response.headers["cache-control"] == "no-store"


async def test_a_refused_oversized_body_carries_them_too(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b"x" * 2_000_000,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    _assert_hygienic(response)
    assert response.headers["cache-control"] == "no-store"


async def test_a_login_that_returns_a_token_is_not_stored_by_any_cache(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    person = await make_user(app, org, Role.END_USER)
    response = await client.post(
        "/api/v1/auth/login", json={"email": person.user.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["token"]
    assert response.headers["cache-control"] == "no-store"
    _assert_hygienic(response)


async def test_created_api_tokens_and_recovery_codes_are_no_store(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    person = await make_user(app, org, Role.END_USER)
    response = await client.post("/api/v1/me/tokens", json={"name": "ci"}, headers=person.headers)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    enrol = await client.post("/api/v1/auth/totp/enrol", headers=person.headers)
    assert enrol.headers["cache-control"] == "no-store"


_ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"')


async def test_the_docs_page_loads_every_asset_from_the_server_itself(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    # No inline script: the page must run under script-src 'self'.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assets = _ASSET.findall(html)
    assert len(assets) == 4  # favicon, stylesheet, Swagger UI bundle, docs.js
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["content-type"].startswith(expected_types[Path(asset).suffix])
        _assert_hygienic(response)
    bundle = await client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    [schema_url] = re.findall(r'data-openapi-url="([^"]+)"', html)
    schema = await client.get(schema_url)
    assert schema.json()["info"]["title"] == "Auxilio"


async def test_the_vendored_swagger_ui_keeps_its_licence() -> None:
    from auxilio.server.web.routes import STATIC_DIR

    vendor = STATIC_DIR / "vendor" / "swagger-ui"
    assert "Apache License" in (vendor / "LICENSE").read_text()
    assert (vendor / "swagger-ui-bundle.js.LICENSE.txt").stat().st_size > 0


@pytest.fixture
async def docs_off_client(
    tmp_path: Path, database_url: str, signing_key: Ed25519PrivateKey
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url, api_docs=False)
    application = create_app(settings, signing_key=signing_key)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_with_the_docs_turned_off_neither_page_nor_schema_is_served(
    docs_off_client: httpx.AsyncClient,
) -> None:
    for path in ("/docs", "/openapi.json"):
        response = await docs_off_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
        _assert_hygienic(response)
    assert (await docs_off_client.get("/healthz")).status_code == 200


def test_the_docs_setting_reads_false_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AUXILIO_API_DOCS", "false")
    assert load_settings(data_dir=tmp_path).api_docs is False
