"""Automated runs on the device: check a server-signed order against the owner's
pre-authorisation, run it with no technician attached, answer with a device-signed outcome.

Checks, in order, each a signed refusal with its own code: the server's signature with the pinned
key (``automation.order_invalid``), this device (``automation.wrong_device``), the order's own
time limit (``automation.expired``), a nonce never seen (``automation.replayed``), then the
device's own copy of the pre-authorisation the order names: known (``pre_authorisation.unknown``),
not revoked (``pre_authorisation.revoked``), signed by the owner for the server whose key signed
the order (``pre_authorisation.wrong_server``: an earlier enrolment's entries never serve
another server), allowing automated runs
(``automation.not_pre_authorised``) of this capability (``pre_authorisation.scope``), its window
open now (``pre_authorisation.outside_window``). A runbook is then checked as in a session
(``runbook.unsigned``, ``runbook.wrong_organisation``, ``runbook.wrong_platform``,
``runbook.parameter_invalid``, ``runbook.interpreter_missing``) and run the same way
(``runbooks_process.run_script``: no shell, its own process group, its own time limit), stopped
if the pre-authorisation is revoked or its window shuts mid-run. Diagnostics are the session's
collection (``diagnostics_sections``) of the sections the order names.

Each order that verifies (the pinned server's signature, this device, in time, never seen
before), run or refused, is written to ``<state>/automation/<run_id>.json`` (0600): the owner's
local record of what ran, when and with what result. An order that does not get that far is
answered with a signed refusal and leaves no file: whoever can inject messages on the way must
not grow the device's state or the owner's log with runs that never were. ``on_verified`` is
called at that point (the service writes the owner's log from there).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auxilio.agent.access import AccessEntry, AccessStore
from auxilio.agent.capabilities import diagnostics_sections
from auxilio.agent.capabilities.runbooks import (
    RunbookRefused,
    interpreter_command,
    run_environment,
    this_platform,
)
from auxilio.agent.capabilities.runbooks_process import run_script, write_private_script
from auxilio.agent.connection import new_id
from auxilio.agent.errors import AgentError
from auxilio.agent.state import AgentState
from auxilio.crypto import runbooks as signed_runbooks
from auxilio.crypto.automation import (
    MAX_OUTPUT_BYTES,
    AutomationOrder,
    AutomationOutcome,
    make_outcome,
    sign_outcome,
    verify_order,
)
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import (
    b64url_decode,
    b64url_encode,
    encode_public_key,
    fingerprint,
    write_private_file,
)
from auxilio.crypto.runbooks import RunbookPlatform, read_runbook, validate_parameters
from auxilio.protocol.frames import MAX_CONTROL_MESSAGE_BYTES, AutomationResult, encode_message
from auxilio.protocol.types import Capability, SignedDocument

logger = logging.getLogger(__name__)


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _now() -> datetime:
    return datetime.now(UTC)


def _claimed(order: SignedDocument) -> tuple[str, str]:
    """The run id and nonce an order claims, read without trusting it: a refusal of an order
    that does not verify still names what it answers."""
    try:
        payload = orjson.loads(b64url_decode(order.body))["payload"]
        run_id, nonce = str(payload["run_id"]), str(payload["nonce"])
        AutomationResult(id="check", run_id=run_id, result=order)  # a valid Identifier
        if 22 <= len(nonce) <= 64:
            return run_id, nonce
        return run_id, b64url_encode(secrets.token_bytes(16))
    except Exception:  # anything unreadable: answered as "unknown"
        return "unknown", b64url_encode(secrets.token_bytes(16))


def check_pre_authorisation(
    entry: AccessEntry | None, order: AutomationOrder, now: datetime, *, server_fingerprint: str
) -> AccessEntry:
    """The owner's pre-authorisation on this device allows this order, signed by the server
    of ``server_fingerprint``, now; or ``Refused``."""
    if entry is None or entry.document.device_id != order.device_id:
        raise Refused("pre_authorisation.unknown", "no such pre-authorisation on this device")
    if entry.revoked:
        raise Refused("pre_authorisation.revoked", "the owner revoked this pre-authorisation")
    document = entry.document
    if document.organisation_id != order.organisation_id:
        raise Refused("pre_authorisation.unknown", "the pre-authorisation is for another org")
    if document.server_fingerprint != server_fingerprint:
        raise Refused("pre_authorisation.wrong_server",
                      "the owner signed this pre-authorisation for another server")  # fmt: skip
    if not document.automated_runs:
        raise Refused("automation.not_pre_authorised", "automated runs are not pre-authorised")
    if not document.allows({Capability(order.capability)}):
        raise Refused("pre_authorisation.scope", f"{order.capability} is not in the scope")
    if not document.window.covers(now):
        raise Refused("pre_authorisation.outside_window", "the window is shut now")
    return entry


def _server_url(state: AgentState) -> str | None:
    try:
        enrolment = json.loads((state.root / "enrolment.json").read_text())
    except (OSError, ValueError):
        return None
    server = enrolment.get("server") if isinstance(enrolment, dict) else None
    return server if isinstance(server, str) else None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _fit_runbook(content: dict[str, Any], limit: int) -> tuple[str, bool]:
    """Halve the longer stream until the JSON fits ``limit`` bytes."""
    cut = False
    while len(text := _json(content).encode()) > limit:
        longer = "stdout" if len(content["stdout"]) >= len(content["stderr"]) else "stderr"
        content[longer] = content[longer][: len(content[longer]) // 2]
        content["truncated"] = cut = True
    return text.decode(), cut


def _fit_report(report: dict[str, Any], limit: int) -> tuple[str, bool]:
    """Drop the largest sections until the report fits ``limit`` bytes."""
    cut = False
    while len(text := _json(report).encode()) > limit:
        sections = [k for k, v in report.items() if isinstance(v, dict) and v.get("available")]
        if not sections:
            break
        largest = max(sections, key=lambda k: len(_json(report[k])))
        report[largest] = diagnostics_sections.unavailable("too large to send")
        cut = True
    return text.decode(), cut


class _Run:
    def __init__(
        self, order: AutomationOrder, *, state: AgentState, access: AccessStore,
        server_public_key: Ed25519PublicKey, clock: Callable[[], datetime],
        platform: RunbookPlatform,
    ) -> None:  # fmt: skip
        self.order, self.state, self.access = order, state, access
        self.server_key, self.clock, self.platform = server_public_key, clock, platform

    def still_allowed(self) -> bool:
        try:
            check_pre_authorisation(self.access.get(self.order.pre_authorisation_id), self.order,
                                    self.clock(), server_fingerprint=fingerprint(self.server_key))
        except Refused:
            return False
        return True

    async def runbook(self) -> dict[str, Any]:
        order = self.order
        assert order.runbook is not None  # noqa: S101 -- the order's validator
        try:
            runbook = read_runbook(self.server_key, order.runbook)
        except signed_runbooks.RunbookError as exc:
            raise Refused(exc.code, str(exc)) from exc
        if runbook.organisation_id != order.organisation_id:
            raise Refused("runbook.wrong_organisation", f"{runbook.name} is another org's")
        if self.platform not in runbook.platforms:
            raise Refused("runbook.wrong_platform", f"{runbook.name} is not for {self.platform}")
        try:
            values = validate_parameters(runbook, order.params)
            command = interpreter_command(runbook.interpreter)
        except signed_runbooks.ParameterInvalid as exc:
            raise Refused(exc.code, str(exc)) from exc
        except RunbookRefused as exc:
            raise Refused(exc.code, str(exc)) from exc
        env, arguments = run_environment(runbook, values)
        with tempfile.TemporaryDirectory(prefix="auxilio-automation-") as directory:
            script = write_private_script(Path(directory), runbook)
            try:
                outcome = await run_script(
                    [*command, str(script), *arguments], env=env, cwd=Path(directory),
                    timeout_seconds=runbook.timeout_seconds, allowed=self.still_allowed,
                )  # fmt: skip
            except OSError as exc:
                raise Refused("runbook.start_failed", str(exc.strerror)) from exc
        content = {
            "runbook_id": runbook.runbook_id, "version": runbook.version,
            "exit_code": outcome.exit_code, "timed_out": outcome.timed_out,
            "duration_ms": outcome.duration_ms, "stdout": outcome.stdout,
            "stderr": outcome.stderr, "truncated": outcome.truncated,
        }  # fmt: skip
        if outcome.stopped:
            status, code = "failed", "automation.stopped"
        elif outcome.timed_out:
            status, code = "failed", "runbook.timed_out"
        elif outcome.exit_code != 0:
            status, code = "failed", "runbook.exit_nonzero"
        else:
            status, code = "done", None
        return {"status": status, "code": code, "exit_code": outcome.exit_code,
                "content": content, "fit": _fit_runbook}  # fmt: skip

    async def diagnostics(self) -> dict[str, Any]:
        every = diagnostics_sections.default_sections(_server_url(self.state))
        chosen: dict[str, Callable[[], dict[str, Any]]] = {
            name: every[name] for name in self.order.sections
        }
        report = await asyncio.to_thread(diagnostics_sections.collect_report, None,
                                         sections=chosen)  # fmt: skip
        return {"status": "done", "code": None, "exit_code": None, "content": report,
                "fit": _fit_report}  # fmt: skip


def _log(state: AgentState, run_id: str, record: dict[str, Any]) -> None:
    """The owner's local record of one order (``auxilio agent log`` may show it)."""
    directory = state.root / "automation"
    directory.mkdir(exist_ok=True, mode=0o700)
    name = run_id if run_id.replace("-", "").replace("_", "").isalnum() else "unknown"
    try:
        write_private_file(directory / f"{name}.json", json.dumps(record, indent=2).encode())
    except OSError:
        logger.exception("automation run %s: the local log could not be written", run_id)


async def handle_order(
    order: SignedDocument,
    *,
    state: AgentState,
    access: AccessStore,
    server_public_key: Ed25519PublicKey,
    device_id: str,
    clock: Callable[[], datetime] = _now,
    platform: RunbookPlatform | None = None,
    on_verified: Callable[[AutomationOrder], None] | None = None,
) -> AutomationResult:
    """The message to send for one ``automation.run`` order (a result or a signed refusal).
    ``on_verified`` is called once the order verified (before the pre-authorisation check)."""
    started = clock()
    run_id, nonce = _claimed(order)
    parsed: AutomationOrder | None = None
    fields: dict[str, Any]
    try:
        parsed = _checked(order, state=state, server_public_key=server_public_key,
                          device_id=device_id, now=started)  # fmt: skip
        run_id, nonce = parsed.run_id, parsed.nonce
        if on_verified is not None:
            on_verified(parsed)
        check_pre_authorisation(access.get(parsed.pre_authorisation_id), parsed, started,
                                server_fingerprint=fingerprint(server_public_key))  # fmt: skip
        run = _Run(parsed, state=state, access=access, server_public_key=server_public_key,
                   clock=clock, platform=platform or this_platform())  # fmt: skip
        fields = await (run.runbook() if parsed.kind == "runbook" else run.diagnostics())
    except Refused as exc:
        fields = {"status": "refused", "code": exc.code, "output": str(exc)}
    except Exception:
        logger.exception("automation run %s failed", run_id)
        fields = {"status": "failed", "code": "automation.failed", "output": "internal error"}
    finished = max(started, clock())
    content, fit = fields.pop("content", None), fields.pop("fit", None)
    limit = MAX_OUTPUT_BYTES
    while True:
        if content is not None and fit is not None:
            fields["output"], fields["truncated"] = fit(copy.deepcopy(content), limit)
        outcome = make_outcome(run_id=run_id, nonce=nonce, started_at=started,
                               finished_at=finished, **fields)  # fmt: skip
        message = AutomationResult(id=new_id(), run_id=run_id,
                                   result=sign_outcome(state.device_key, outcome))
        size = len(encode_message(message).encode())
        if size <= MAX_CONTROL_MESSAGE_BYTES or content is None or limit <= 1024:
            break
        # JSON escapes and base64 make the message larger than its output: a smaller bound.
        limit = max(1024, int(limit * MAX_CONTROL_MESSAGE_BYTES / size * 0.9))
    if parsed is not None:  # only orders that verified are recorded (see the module's doc)
        _log(state, run_id, _record(parsed, outcome))
    return message


def busy(order: SignedDocument, *, state: AgentState) -> AutomationResult:
    """The signed refusal (``automation.busy``) of an order that found the device's queue full;
    nothing is recorded for it."""
    run_id, nonce = _claimed(order)
    now = _now()
    outcome = make_outcome(run_id=run_id, nonce=nonce, started_at=now, finished_at=now,
                           status="refused", code="automation.busy",
                           output="the device is running other automated runs; send it later")
    return AutomationResult(id=new_id(), run_id=run_id,
                            result=sign_outcome(state.device_key, outcome))  # fmt: skip


def _checked(
    order: SignedDocument, *, state: AgentState, server_public_key: Ed25519PublicKey,
    device_id: str, now: datetime,
) -> AutomationOrder:  # fmt: skip
    try:
        parsed = verify_order(server_public_key, order)
    except CryptoError as exc:
        raise Refused("automation.order_invalid", str(exc)) from exc
    if parsed.device_id != device_id or parsed.device_public_key != encode_public_key(
        state.device_public_key
    ):
        raise Refused("automation.wrong_device", "the order is for another device")
    if now >= parsed.not_after:
        raise Refused("automation.expired", "the order's time is over")
    try:
        fresh = state.remember_grant(parsed.nonce, until=parsed.not_after, now=now)
    except AgentError as exc:
        raise Refused("automation.state_unreadable", str(exc)) from exc
    if not fresh:
        raise Refused("automation.replayed", "this order was already acted on")
    return parsed


def _record(order: AutomationOrder | None, outcome: AutomationOutcome) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": outcome.run_id, "status": outcome.status, "code": outcome.code,
        "exit_code": outcome.exit_code, "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat(), "output_sha256": outcome.output_sha256,
        "truncated": outcome.truncated,
    }  # fmt: skip
    if order is not None:
        record.update(kind=order.kind, pre_authorisation_id=order.pre_authorisation_id,
                      ticket_ref=order.ticket_ref, sections=list(order.sections),
                      params=order.params, issued_at=order.issued_at.isoformat())  # fmt: skip
    return record
