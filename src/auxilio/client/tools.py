"""The technician's end of diagnostics and runbooks, and the ticket attachments of their results.

Diagnostics: ``diagnostics.request`` -> the person sees the report and sends it
(``diagnostics.report``) or withholds it (``diagnostics.error`` ``diagnostics.withheld``).

Runbooks: the signed runbook is fetched from the server (``GET /api/v1/runbooks/{id}``), its
signature checked with the pinned server key (``read_runbook``), its digest checked against the
grant's pins, and the parameters validated with the same ``validate_parameters`` the agent runs,
before anything is sent: a typo in a parameter is a local error, not a refusal on the person's
screen. Parameters are typed by the runbook's declaration: ``lines=200`` is the integer 200 for
an ``integer`` parameter, the text "200" for a ``string``.

Each result that arrives is attached to the session's ticket (``diagnostics`` or
``runbook_result``) as JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from auxilio.client.api import ApiClient, ApiError
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.grants import Grant
from auxilio.crypto.runbooks import (
    ParameterInvalid,
    Runbook,
    read_runbook,
    runbook_digest,
    validate_parameters,
)
from auxilio.protocol.app import (
    AppMessage,
    DiagnosticsError,
    DiagnosticsReport,
    DiagnosticsRequest,
    ParameterValue,
    RunbookError,
    RunbookResult,
    RunbookRun,
)
from auxilio.protocol.types import Capability, SignedDocument

# The server's limit on an attachment's content (server/tickets/attachments.py).
MAX_ATTACHMENT_BYTES = 1024 * 1024

Send = Callable[[AppMessage], Awaitable[None]]


class ToolError(Exception):
    """A files, diagnostics or runbook request that did not complete. ``code`` is the device's
    stable code from its ``*.error`` or one of the client's own (``runbook.not_in_grant``,
    ``files.hash_mismatch``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def coerce_parameters(runbook: Runbook, texts: Mapping[str, str]) -> dict[str, ParameterValue]:
    """Typed values for ``name=value`` texts, by each parameter's declared type; the checks
    themselves are ``validate_parameters``'s (unknown names are passed on for it to refuse)."""
    declared = {p.name: p for p in runbook.parameters}
    values: dict[str, ParameterValue] = {}
    for name, text in texts.items():
        spec = declared.get(name)
        if spec is None or spec.type in ("string", "choice"):
            values[name] = text
        elif spec.type == "integer":
            try:
                values[name] = int(text)
            except ValueError:
                raise ParameterInvalid(name, "must be an integer") from None
        elif text in ("true", "false"):
            values[name] = text == "true"
        else:
            raise ParameterInvalid(name, "must be true or false")
    validate_parameters(runbook, values)
    return values


@dataclass(frozen=True, slots=True)
class RunbookOutcome:
    runbook: Runbook
    parameters: dict[str, ParameterValue]  # as sent, typed
    result: RunbookResult


class ToolRequests:
    """Diagnostics and runbook requests of one session, routed by id like ``FileTransfers``."""

    def __init__(
        self,
        *,
        send: Send,
        new_id: Callable[[], int],
        api: ApiClient,
        server_key: Ed25519PublicKey,
        support_session_id: str,
        grant: Callable[[], Grant | None],
    ) -> None:
        self._send = send
        self._new_id = new_id
        self._api = api
        self._server_key = server_key
        self._support_session_id = support_session_id
        self._grant = grant
        self._waiting: dict[int, asyncio.Future[AppMessage]] = {}
        self._ticket_id: str | None = None

    def receive(self, message: AppMessage) -> bool:
        match message:
            case DiagnosticsReport(request_id=ref) | RunbookResult(run_id=ref):
                pass
            case DiagnosticsError(ref=ref) | RunbookError(ref=ref):
                pass
            case _:
                return False
        waiter = self._waiting.get(ref)
        if waiter is None or waiter.done():
            return False
        waiter.set_result(message)
        return True

    def abort(self, code: str, message: str) -> None:
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(ToolError(code, message))

    async def _ask(self, request_id: int, message: AppMessage) -> AppMessage:
        waiter: asyncio.Future[AppMessage] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            await self._send(message)
            answer = await waiter
        finally:
            del self._waiting[request_id]
        if isinstance(answer, DiagnosticsError | RunbookError):
            raise ToolError(answer.code, answer.message)
        return answer

    # -- diagnostics -----------------------------------------------------------------------

    async def diagnostics(self, *, reason: str = "") -> DiagnosticsReport:
        request_id = self._new_id()
        answer = await self._ask(request_id, DiagnosticsRequest(request_id=request_id,
                                                                reason=reason))  # fmt: skip
        if not isinstance(answer, DiagnosticsReport):
            raise ToolError("diagnostics.unexpected", f"{answer.type} for diagnostics")
        return answer

    # -- runbooks --------------------------------------------------------------------------

    async def fetch_runbook(self, runbook_id: str) -> tuple[SignedDocument, Runbook]:
        """The server-signed runbook, checked with the pinned key and against the grant."""
        try:
            answer = await self._api.get_runbook(runbook_id)
            signed = SignedDocument.model_validate(answer["signed"])
        except ApiError as exc:
            raise ToolError(_scoped("runbook", exc.code), exc.message) from exc
        except (KeyError, TypeError, ValidationError) as exc:
            raise ToolError("runbook.malformed", "no signed runbook in the answer") from exc
        try:
            runbook = read_runbook(self._server_key, signed)
        except CryptoError as exc:
            raise ToolError(exc.code, str(exc)) from exc
        if runbook.runbook_id != runbook_id:
            raise ToolError("runbook.malformed", f"the server sent {runbook.runbook_id!r}")
        self._check_pinned(runbook, signed)
        return signed, runbook

    def _check_pinned(self, runbook: Runbook, signed: SignedDocument) -> None:
        """The agent refuses a runbook its grant does not pin; say so before asking it."""
        grant = self._grant()
        item = grant.capability(Capability.RUNBOOKS, now=datetime.now(UTC)) if grant else None
        if item is None:
            raise ToolError("capability.not_granted", "runbooks are not granted in this session")
        pins = item.limits.runbooks
        if pins is None:
            return
        digest = runbook_digest(signed)
        if not any(pin.id == runbook.runbook_id and pin.sha256 == digest for pin in pins):
            pinned = ", ".join(f"{p.id} v{p.version}" for p in pins) or "none"
            raise ToolError(
                "runbook.not_in_grant",
                f"{runbook.runbook_id} v{runbook.version} is not in this session's grant "
                f"(granted: {pinned}); request a session with --runbook {runbook.runbook_id}",
            )

    async def run_runbook(
        self, runbook_id: str, texts: Mapping[str, str], *, reason: str = ""
    ) -> RunbookOutcome:
        signed, runbook = await self.fetch_runbook(runbook_id)
        try:
            parameters = coerce_parameters(runbook, texts)
        except ParameterInvalid as exc:
            raise ToolError(exc.code, str(exc)) from exc
        run_id = self._new_id()
        run = RunbookRun(run_id=run_id, runbook=signed, parameters=parameters, reason=reason)
        answer = await self._ask(run_id, run)
        if not isinstance(answer, RunbookResult):
            raise ToolError("runbook.unexpected", f"{answer.type} for a runbook run")
        return RunbookOutcome(runbook, parameters, answer)

    # -- ticket attachments ----------------------------------------------------------------

    async def attach(self, *, kind: str, name: str, content: Mapping[str, Any]) -> Any:
        """Post ``content`` as JSON to the session's ticket; the server's answer (with its id)."""
        data = orjson.dumps(content, option=orjson.OPT_INDENT_2)
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise ToolError(
                "attachment.too_large",
                f"{len(data)} bytes, the ticket takes {MAX_ATTACHMENT_BYTES}",
            )
        text = data.decode()
        try:
            if self._ticket_id is None:
                details = await self._api.get_support_session(self._support_session_id)
                self._ticket_id = str(details["ticket_id"])
            return await self._api.add_ticket_attachment(
                self._ticket_id,
                kind=kind,
                name=name,
                media_type="application/json",
                content=text,
                support_session_id=self._support_session_id,
            )
        except ApiError as exc:
            raise ToolError(_scoped("attachment", exc.code), exc.message) from exc

    async def attach_diagnostics(self, report: DiagnosticsReport) -> Any:
        stamp = report.collected_at.strftime("%Y%m%dT%H%M%SZ")
        return await self.attach(
            kind="diagnostics",
            name=f"diagnostics-{stamp}.json",
            content=report.model_dump(mode="json", exclude={"type"}),
        )

    async def attach_runbook_result(self, run: RunbookOutcome) -> Any:
        runbook = run.runbook
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        content = {
            "runbook_name": runbook.name,
            "parameters": run.parameters,
            **run.result.model_dump(mode="json", exclude={"type"}),
        }
        name = f"runbook-{runbook.runbook_id}-v{runbook.version}-{stamp}.json"
        return await self.attach(kind="runbook_result", name=name, content=content)


def _scoped(scope: str, code: str) -> str:
    """A server error code as a dotted client code: ``runbook.not_found`` stays as it is,
    ``attachment_too_large`` is ``attachment.too_large``, ``network`` ``runbook.network``."""
    if code.startswith(f"{scope}.") or code.startswith(f"{scope}_"):
        return code.replace("_", ".", 1) if "." not in code else code
    return f"{scope}.{code.replace('.', '_') or 'error'}"
