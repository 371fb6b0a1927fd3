"""A small REST client for the technician's commands, over httpx.

Every error answer of the server is ``{"error": {"code", "message", "details"}}``; ``ApiError``
keeps those fields and renders them as one readable paragraph (a policy denial names its rule and
policy version, a validation error the fields), so no command prints a raw response.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any, Self

import httpx

API_PREFIX = "/api/v1"
# Long enough for an argon2 login on a slow server, short enough that a dead one is noticed.
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
# Pages of the ticket list searched for a ticket number; the API caps a page at 200.
_TICKET_PAGE = 200
_TICKET_PAGES_MAX = 50


class ApiError(Exception):
    """An error answer of the server, or no answer at all (``status`` 0)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def describe(self) -> str:
        where = f"HTTP {self.status}, " if self.status else ""
        lines = [f"{self.message} ({where}{self.code})"]
        detail = self.details
        if "rule" in detail or "reason" in detail:
            lines.append(
                f"  policy rule {detail.get('rule', '?')}: {detail.get('reason', '')}"
                f" (policy version {detail.get('policy_version', '?')})"
            )
        for problem in detail.get("problems", [])[:10]:
            if isinstance(problem, dict):
                location = ".".join(str(p) for p in problem.get("loc", []))
                lines.append(f"  {location}: {problem.get('message', '')}")
        if "retry_after_seconds" in detail:
            lines.append(f"  try again in {detail['retry_after_seconds']} s")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


def error_from_response(response: httpx.Response) -> ApiError:
    """Turn a non-2xx response into an ``ApiError``, whatever its body looks like."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        details = error.get("details")
        return ApiError(
            response.status_code,
            str(error.get("code", "unknown")),
            str(error.get("message", response.reason_phrase)),
            details if isinstance(details, dict) else {},
        )
    text = response.text.strip()[:200] or response.reason_phrase
    return ApiError(response.status_code, f"http_{response.status_code}", text)


def normalise_server(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"server URL must start with https:// (or http:// for local use): {url}")
    return url


def websocket_url(server: str, path: str) -> str:
    scheme, rest = server.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + path


class ApiClient:
    """Async REST client bound to one server and, once logged in, one bearer token."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = normalise_server(server)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.server + API_PREFIX,
            headers=headers,
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, json: Any = None, token: str | None = None
    ) -> Any:
        """One API call; ``token`` overrides the stored one (the enrolment-only login token)."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            response = await self._http.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(0, "network", f"cannot reach {self.server}: {exc}") from exc
        if response.is_error:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "bad_response", "the answer is not JSON") from exc

    # -- identity ---------------------------------------------------------------------------

    async def start_totp_enrolment(self, token: str) -> str:
        """A new pending TOTP secret for the account of ``token``: its otpauth:// URI."""
        answer = await self.request("POST", "/auth/totp/enrol", token=token)
        return str(answer["provisioning_uri"])

    async def login(
        self,
        *,
        email: str,
        password: str,
        totp_code: str | None = None,
        organisation: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {"email": email, "password": password}
        if totp_code:
            body["totp_code"] = totp_code
        if organisation:
            body["organisation"] = organisation
        return await self.request("POST", "/auth/login", json=body)

    async def logout(self) -> None:
        await self.request("POST", "/auth/logout")

    async def server_key(self) -> Any:
        return await self.request("GET", "/server-key")

    # -- tickets ----------------------------------------------------------------------------

    async def resolve_ticket(self, ticket: str) -> str:
        """The ticket id for what the technician typed: a UUID, or a number (``42``, ``#42``)."""
        text = ticket.strip().lstrip("#")
        try:
            return str(uuid.UUID(text))
        except ValueError:
            pass
        if not text.isdigit():
            raise ApiError(0, "bad_ticket", f"{ticket!r} is neither a ticket number nor an id")
        number = int(text)
        for page in range(_TICKET_PAGES_MAX):
            listing = await self.request(
                "GET", f"/tickets?limit={_TICKET_PAGE}&offset={page * _TICKET_PAGE}"
            )
            for item in listing["items"]:
                if item.get("number") == number:
                    return str(item["id"])
            if (page + 1) * _TICKET_PAGE >= int(listing["total"]):
                break
        raise ApiError(404, "ticket_not_found", f"no ticket number {number} visible to you")

    # -- support sessions -------------------------------------------------------------------

    async def request_support_session(
        self,
        *,
        ticket_id: str,
        mode: str,
        capabilities: list[str],
        technician_e2e_key: str,
        record: bool = False,
        terminal_shell: str | None = None,
        files_direction: str | None = None,
        runbooks: list[str] | None = None,
        device_id: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {
            "ticket_id": ticket_id,
            "mode": mode,
            "capabilities": capabilities,
            "technician_e2e_key": technician_e2e_key,
            "record": record,
        }
        # Only what was asked: an absent field lets the policy apply its own default.
        if terminal_shell is not None:
            body["terminal_shell"] = terminal_shell
        if files_direction is not None:
            body["files_direction"] = files_direction
        if runbooks:
            body["runbooks"] = runbooks
        if device_id is not None:  # unattended: the enrolled device (docs/unattended.md)
            body["device_id"] = device_id
        return await self.request("POST", "/support-sessions", json=body)

    async def get_support_session(self, support_session_id: str) -> Any:
        return await self.request("GET", f"/support-sessions/{support_session_id}")

    async def end_support_session(self, support_session_id: str) -> Any:
        return await self.request("POST", f"/support-sessions/{support_session_id}/end")

    async def write_summary(self, support_session_id: str, summary: str) -> Any:
        return await self.request(
            "POST", f"/support-sessions/{support_session_id}/summary", json={"summary": summary}
        )

    async def report(self, support_session_id: str) -> Any:
        return await self.request("GET", f"/support-sessions/{support_session_id}/report")

    # -- runbooks and ticket attachments ----------------------------------------------------

    async def get_runbook(self, runbook_id: str) -> Any:
        """The current approved version, with its signed document (``signed``) and digest."""
        return await self.request("GET", f"/runbooks/{runbook_id}")

    async def add_ticket_attachment(
        self,
        ticket_id: str,
        *,
        kind: str,
        name: str,
        media_type: str,
        content: str,
        support_session_id: str | None = None,
    ) -> Any:
        body = {"kind": kind, "name": name, "media_type": media_type, "content": content,
                "support_session_id": support_session_id}  # fmt: skip
        return await self.request("POST", f"/tickets/{ticket_id}/attachments", json=body)
