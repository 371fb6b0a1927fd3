"""Runbooks on the device (R4, R15): approved scripts, run only as signed and as granted.

Before anything runs, five checks, each with its own stable code: the capability passes the
session's gate (``runbook.not_allowed``); the server's signature verifies (``runbook.unsigned``,
``runbook.malformed``); the grant pins this runbook's id AND the digest of its signed body
(``runbook.not_in_grant``, ``runbook.altered``), for the grant's organisation
(``runbook.wrong_organisation``) and this platform (``runbook.wrong_platform``); the parameters
are valid for their declared types (``runbook.parameter_invalid``). Then the person is asked,
unless the pin says the policy pre-authorised it.

The script runs from a private file under the real interpreter, without a shell in between
(``runbooks_process``): parameters are environment variables or separate arguments, so a value
such as ``$(touch /tmp/x)`` reaches the script as text. The environment is minimal (built here),
stdin is empty, and the run has a process group of its own so that the time limit, a revocation
and the session's end stop everything it started. What the person reads is in their language
(``feed.texts.runbooks``); what the technician receives stays English.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auxilio.agent.capabilities.base import Activity, Question, SessionServices
from auxilio.agent.capabilities.runbooks_process import RunOutcome, run_script, write_private_script
from auxilio.agent.i18n_capabilities import RunbookTexts
from auxilio.crypto import runbooks as signed_runbooks
from auxilio.crypto.runbooks import (
    ParameterInvalid,
    Runbook,
    RunbookPlatform,
    read_runbook,
    runbook_digest,
    validate_parameters,
)
from auxilio.protocol.app import (
    AppMessage,
    RunbookError,
    RunbookResult,
    RunbookRun,
    encode_app_message,
)
from auxilio.protocol.binary import MAX_FRAME_PLAINTEXT
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.results import runbook_result_digest
from auxilio.protocol.types import Capability, ConsentDecision, RunbookPin

logger = logging.getLogger(__name__)


class RunbookRefused(Exception):
    """A check before the run failed: ``code`` goes to the technician, ``str()`` to both."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def this_platform() -> RunbookPlatform:
    if sys.platform == "win32":
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


def interpreter_command(interpreter: str) -> list[str]:
    """The argv before the script's path: the real executable, no shell to parse anything;
    ``runbook.interpreter_missing`` when this device has none."""
    if interpreter in ("sh", "bash"):
        found = shutil.which(interpreter)
        if found:
            return [found]
    elif interpreter == "python":
        # -I: isolated, ignores PYTHON* variables and the user's site directory.
        found = sys.executable or shutil.which("python3") or shutil.which("python")
        if found:
            return [found, "-I"]
    elif interpreter == "powershell":
        found = shutil.which("pwsh") or shutil.which("powershell")
        if found:
            return [found, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File"]
    raise RunbookRefused("runbook.interpreter_missing", f"{interpreter} is not installed here")


def run_environment(
    runbook: Runbook, values: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The minimal environment (PATH, HOME, LANG and the ``AUXILIO_PARAM_*`` parameters) and
    the positional arguments, in declaration order."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", str(Path.home())),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if sys.platform == "win32":  # Windows programs fail in odd ways without these
        env.update({k: os.environ[k] for k in ("SYSTEMROOT", "WINDIR", "TEMP") if k in os.environ})
    arguments: list[str] = []
    for spec in runbook.parameters:
        if spec.name not in values:
            continue
        if spec.pass_as == "argument":  # noqa: S105 -- a parameter's mode, not a password
            arguments.append(values[spec.name])
        else:
            env[spec.env_name] = values[spec.name]
    return env, arguments


def describe_run(runbook: Runbook, values: Mapping[str, str]) -> str:
    """``<name> (a='x', b='2')``: what the person reads and the auditor's sealed subject."""
    shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
    return f"{runbook.name} ({shown})" if shown else runbook.name


def fit_in_frame(result: RunbookResult) -> RunbookResult:
    """The result cut until its JSON fits one end-to-end frame: output full of control bytes
    is escaped six times its size in JSON, which two full streams could not afford."""
    while len(encode_app_message(result)) > MAX_FRAME_PLAINTEXT:
        longer = "stdout" if len(result.stdout) >= len(result.stderr) else "stderr"
        text = getattr(result, longer)
        result = result.model_copy(update={longer: text[: len(text) // 2], "truncated": True})
    return result


# -- the handler ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Checked:
    runbook: Runbook
    pin: RunbookPin
    values: dict[str, str]
    command: list[str]


class RunbookHandler:
    """``runbook.run`` -> checks, the person's consent, one run at a time, the result.

    The run is a task of its own, so the session keeps reading messages (chat, the person's
    revocation) while a runbook runs for up to its time limit.
    """

    def __init__(
        self,
        services: SessionServices,
        server_key: Ed25519PublicKey,
        *,
        platform: RunbookPlatform | None = None,
    ) -> None:
        self._services = services
        self._server_key = server_key
        self._platform = platform or this_platform()
        self._task: asyncio.Task[None] | None = None

    @property
    def _texts(self) -> RunbookTexts:
        """The person's language, as the session's feed speaks it."""
        return self._services.feed.texts.runbooks

    async def handle(self, message: AppMessage) -> None:
        if not isinstance(message, RunbookRun):
            self._services.log.append("ignored", what=f"{message.type} for runbooks")
            return
        if not self._services.gate(Capability.RUNBOOKS):
            self._services.feed.alert(self._texts.not_allowed)
            await self._error(message.run_id, "runbook.not_allowed", "runbooks are not allowed")
            return
        if self._task is not None and not self._task.done():
            await self._error(message.run_id, "runbook.busy", "another runbook is running")
            return
        try:
            checked = self.check(message)
        except RunbookRefused as exc:
            self._services.feed.alert(self._texts.refused.format(reason=exc))
            await self._error(message.run_id, exc.code, str(exc))
            return
        self._task = asyncio.create_task(self._guarded(message, checked), name="runbook")

    async def close(self) -> None:
        """Revoked or the session ended: a run in progress is killed, a question dropped."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # wait() rather than await: the task's cancellation is not ours to raise.
            await asyncio.wait({task})

    async def wait_idle(self) -> None:
        """Until the run in progress is answered (tests and an orderly shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def check(self, message: RunbookRun) -> _Checked:
        """Every check before the person is asked; ``RunbookRefused`` names the first failed."""
        try:
            runbook = read_runbook(self._server_key, message.runbook)
        except signed_runbooks.RunbookError as exc:
            raise RunbookRefused(exc.code, str(exc)) from exc
        grant = self._services.grant()
        item = grant.capability(Capability.RUNBOOKS, now=self._services.clock())
        pins = (
            [p for p in (item.limits.runbooks or ()) if p.id == runbook.runbook_id] if item else []
        )
        if not pins:
            raise RunbookRefused("runbook.not_in_grant", f"{runbook.name} is not in the grant")
        digest = runbook_digest(message.runbook)
        pin = next((p for p in pins if p.sha256 == digest and p.version == runbook.version), None)
        if pin is None:
            raise RunbookRefused(
                "runbook.altered", f"{runbook.name} differs from the version the grant pins"
            )
        if runbook.organisation_id != grant.organisation_id:
            raise RunbookRefused(
                "runbook.wrong_organisation", f"{runbook.name} belongs to another organisation"
            )
        if self._platform not in runbook.platforms:
            raise RunbookRefused(
                "runbook.wrong_platform", f"{runbook.name} is not for {self._platform}"
            )
        try:
            values = validate_parameters(runbook, message.parameters)
        except ParameterInvalid as exc:
            raise RunbookRefused(exc.code, str(exc)) from exc
        return _Checked(runbook, pin, values, interpreter_command(runbook.interpreter))

    async def _guarded(self, message: RunbookRun, checked: _Checked) -> None:
        try:
            await self._serve(message, checked)
        except Exception:
            # The task's boundary (nobody awaits it), as in dispatch: the traceback in the
            # agent's log, a line for the person, a failed answer. Cancellation passes.
            logger.exception("runbook run %s failed", message.run_id)
            self._services.feed.alert(self._texts.internal)
            self._services.log.append("handler_failed", capability="runbooks", what=message.type)
            await self._error(message.run_id, "runbook.failed", "internal error on the device")

    async def _serve(self, message: RunbookRun, checked: _Checked) -> None:
        services, texts = self._services, self._texts
        runbook = checked.runbook
        if checked.pin.consent and not await self._consented(message, checked):
            return
        if not services.gate(Capability.RUNBOOKS):
            await self._error(message.run_id, "runbook.not_allowed", "runbooks are not allowed")
            return
        services.feed.activity(texts.running.format(run=describe_run(runbook, checked.values)))
        env, arguments = run_environment(runbook, checked.values)
        with tempfile.TemporaryDirectory(prefix="auxilio-runbook-") as directory:
            script = write_private_script(Path(directory), runbook)
            try:
                outcome = await run_script(
                    [*checked.command, str(script), *arguments],
                    env=env,
                    cwd=Path(directory),
                    timeout_seconds=runbook.timeout_seconds,
                    allowed=lambda: services.gate(Capability.RUNBOOKS),
                )
            except OSError as exc:
                services.feed.alert(
                    texts.start_failed.format(name=runbook.name, error=exc.strerror)
                )
                await self._error(message.run_id, "runbook.start_failed", str(exc.strerror))
                return
        await self._finish(message, checked, outcome)

    async def _consented(self, message: RunbookRun, checked: _Checked) -> bool:
        services, texts = self._services, self._texts
        runbook = checked.runbook
        lines = [runbook.name]
        if runbook.description:
            lines.append(runbook.description)
        lines += [f"  {name} = {value!r}" for name, value in checked.values.items()]
        lines.append(texts.reason.format(reason=message.reason or texts.no_reason))
        lines.append(texts.time_limit.format(seconds=runbook.timeout_seconds))
        lines.append(
            texts.approved_by.format(approver=runbook.approved_by_name, author=runbook.author_name)
        )
        answer = await services.ask(
            Question(
                kind="runbook",
                title=texts.title.format(technician=services.grant().technician_name),
                lines=tuple(lines),
                allow_label=texts.run_it,
                refuse_label=texts.dont_run,
            )
        )
        if answer is ConsentDecision.GRANTED:
            return True
        services.feed.activity(texts.not_run.format(name=runbook.name))
        services.log.append("runbook_refused", id=runbook.runbook_id, answer=str(answer))
        await self._error(message.run_id, "runbook.refused", "the person did not allow it")
        await services.report(
            Activity(
                capability=Capability.RUNBOOKS,
                kind=ActivityKind.RUNBOOK_REFUSED,
                subject=describe_run(runbook, checked.values),
                runbook_id=runbook.runbook_id,
            )
        )
        return False

    async def _finish(self, message: RunbookRun, checked: _Checked, outcome: RunOutcome) -> None:
        services, texts = self._services, self._texts
        runbook = checked.runbook
        services.log.append(
            "runbook_run", id=runbook.runbook_id, version=runbook.version,
            exit_code=outcome.exit_code, timed_out=outcome.timed_out, stopped=outcome.stopped,
        )  # fmt: skip
        if outcome.stopped:
            services.feed.activity(texts.stopped.format(name=runbook.name))
            await self._error(message.run_id, "runbook.stopped", "runbooks were revoked mid-run")
            return
        if outcome.timed_out:
            services.feed.activity(texts.timed_out.format(name=runbook.name))
        else:
            services.feed.activity(
                texts.finished.format(name=runbook.name, exit_code=outcome.exit_code)
            )
        result = fit_in_frame(
            RunbookResult(
                run_id=message.run_id, runbook_id=runbook.runbook_id, version=runbook.version,
                exit_code=outcome.exit_code, timed_out=outcome.timed_out,
                duration_ms=outcome.duration_ms, stdout=outcome.stdout, stderr=outcome.stderr,
                truncated=outcome.truncated,
            )
        )  # fmt: skip
        await services.mark_used(Capability.RUNBOOKS)
        # Reported before it is sent, on the same connection: the server has the result's
        # digest when the technician's client attaches it to the ticket (``verified``).
        await services.report(
            Activity(
                capability=Capability.RUNBOOKS,
                kind=ActivityKind.RUNBOOK_RUN,
                subject=describe_run(runbook, checked.values),
                runbook_id=runbook.runbook_id,
                exit_code=outcome.exit_code,
                sha256=runbook_result_digest(result.model_dump(mode="json")),
            )
        )
        await services.send(result)

    async def _error(self, ref: int, code: str, text: str) -> None:
        self._services.log.append("runbook_error", code=code, ref=ref)
        await self._services.send(RunbookError(ref=ref, code=code, message=text))
