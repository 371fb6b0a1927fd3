"""The REST client turns the server's error bodies into clear messages."""

from __future__ import annotations

import httpx
import pytest

from auxilio.client.api import ApiClient, ApiError, normalise_server, websocket_url


def _client(handler: httpx.MockTransport) -> ApiClient:
    return ApiClient("https://help.example.org", "t" * 32, transport=handler)


async def test_it_names_the_policy_rule_of_a_denied_request() -> None:
    body = {
        "error": {
            "code": "policy_denied",
            "message": "Support sessions are not allowed now.",
            "details": {
                "rule": "support_hours.weekly",
                "reason": "outside support hours",
                "policy_version": "school-2025.1",
            },
        }
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(403, json=body))

    async with _client(transport) as api:
        with pytest.raises(ApiError) as caught:
            await api.request_support_session(
                ticket_id="t", mode="attended", capabilities=["chat"], technician_e2e_key="k"
            )

    error = caught.value
    assert (error.status, error.code) == (403, "policy_denied")
    text = str(error)
    assert "Support sessions are not allowed now. (HTTP 403, policy_denied)" in text
    assert "support_hours.weekly" in text
    assert "school-2025.1" in text


async def test_it_lists_the_fields_of_a_validation_error() -> None:
    body = {
        "error": {
            "code": "validation_failed",
            "message": "The request is not valid.",
            "details": {"problems": [{"loc": ["body", "mode"], "message": "bad mode"}]},
        }
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json=body))

    async with _client(transport) as api:
        with pytest.raises(ApiError, match=r"body\.mode: bad mode"):
            await api.report("ss-1")


async def test_it_survives_an_error_that_is_not_json() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))

    async with _client(transport) as api:
        with pytest.raises(ApiError) as caught:
            await api.report("ss-1")

    assert caught.value.code == "http_502"
    assert "Bad Gateway" in str(caught.value)


async def test_it_reports_an_unreachable_server_without_a_traceback() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with _client(httpx.MockTransport(refuse)) as api:
        with pytest.raises(ApiError, match=r"cannot reach https://help\.example\.org"):
            await api.server_key()


async def test_it_sends_the_bearer_token_and_the_login_body() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"token": "x"})

    async with _client(httpx.MockTransport(answer)) as api:
        await api.login(email="a@b.c", password="pw", totp_code="123456")

    assert seen[0].url.path == "/api/v1/auth/login"
    assert seen[0].headers["authorization"] == "Bearer " + "t" * 32
    assert b'"totp_code":"123456"' in seen[0].content.replace(b" ", b"")


async def test_it_finds_a_ticket_by_number_across_pages() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        items = [
            {"id": f"00000000-0000-4000-8000-{offset + i:012d}", "number": offset + i}
            for i in range(200)
        ]
        return httpx.Response(200, json={"items": items, "total": 300})

    async with _client(httpx.MockTransport(answer)) as api:
        assert await api.resolve_ticket("#250") == "00000000-0000-4000-8000-000000000250"
        with pytest.raises(ApiError, match="no ticket number 999"):
            await api.resolve_ticket("999")


def test_server_urls_are_checked_and_mapped_to_websocket_urls() -> None:
    assert normalise_server("https://help.example.org/") == "https://help.example.org"
    assert websocket_url("https://h", "/ws/technician") == "wss://h/ws/technician"
    assert websocket_url("http://127.0.0.1:8000", "/ws/x") == "ws://127.0.0.1:8000/ws/x"
    with pytest.raises(ValueError, match="https://"):
        normalise_server("help.example.org")
