"""Runbooks on the device: only signed, pinned and valid ones run; values stay text; limits hold."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.capabilities import runbooks
from auxilio.agent.capabilities.runbooks import RunbookHandler, fit_in_frame
from auxilio.agent.i18n import ES
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.runbooks import Runbook, RunbookParameter, runbook_digest, sign_runbook
from auxilio.protocol.app import (
    MAX_RUNBOOK_OUTPUT,
    RunbookError,
    RunbookResult,
    RunbookRun,
    encode_app_message,
)
from auxilio.protocol.binary import MAX_FRAME_PLAINTEXT
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import (
    Capability,
    CapabilityLimits,
    ConsentDecision,
    RunbookPin,
    SignedDocument,
)

from .capability_services import Recorder, make_recorder
from .factories import now

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the scripts here are POSIX sh")

ECHO_TARGET = 'printf "%s\\n" "$AUXILIO_PARAM_TARGET"\n'
INJECTIONS = [
    '; rm -rf "$HOME/nothing-here"',
    "$(touch {sentinel})",
    "`touch {sentinel}`",
    "x' ; touch {sentinel} ; echo '",
    'x" ; touch {sentinel} ; echo "',
    "&& touch {sentinel} || true",
    "| touch {sentinel}",
    "${{IFS}}touch${{IFS}}{sentinel}",
]


def make_runbook(**overrides: Any) -> Runbook:
    fields: dict[str, Any] = {
        "organisation_id": "org-7",
        "runbook_id": "rb-echo",
        "version": 1,
        "name": "Echo a target",
        "description": "Prints the target it was given.",
        "platforms": ("linux", "macos"),
        "interpreter": "sh",
        "script": ECHO_TARGET,
        "parameters": (RunbookParameter(name="target", type="string", max_length=1000),),
        "timeout_seconds": 30,
        "author_id": "tech-1",
        "author_name": "Rosa Díaz",
        "approved_by_id": "sup-1",
        "approved_by_name": "Luis Pérez",
        "approved_at": now(),
    }
    fields.update(overrides)
    return Runbook(**fields)


def pin_for(signed: SignedDocument, *, consent: bool = True, **overrides: Any) -> RunbookPin:
    payload = {"version": 1, "sha256": runbook_digest(signed), "consent": consent}
    return RunbookPin(id=overrides.pop("id", "rb-echo"), **{**payload, **overrides})


class Kit:
    """A handler whose grant pins ``pins``, with the server key that signs the runbooks."""

    def __init__(
        self,
        tmp_path: Path,
        server_key: Ed25519PrivateKey,
        technician_key: X25519PrivateKey,
        pins: tuple[RunbookPin, ...],
    ) -> None:
        self.server_key = server_key
        self.recorder: Recorder = make_recorder(
            tmp_path,
            server_key,
            technician_key,
            capabilities=[Capability.RUNBOOKS],
            limits={Capability.RUNBOOKS: CapabilityLimits(runbooks=pins)},
        )
        self.handler = RunbookHandler(self.recorder.services(), server_key.public_key())

    async def run(self, signed: SignedDocument, **parameters: Any) -> RunbookResult | RunbookError:
        await self.handler.handle(
            RunbookRun(run_id=5, runbook=signed, parameters=parameters, reason="DNS is stale")
        )
        answer = await self.recorder.next_sent()
        assert isinstance(answer, RunbookResult | RunbookError)
        return answer


@pytest.fixture
def make_kit(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> Callable[..., Kit]:
    def build(*pins: RunbookPin) -> Kit:
        return Kit(tmp_path, server_key, technician_key, pins)

    return build


def signed_and_kit(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, **overrides: Any
) -> tuple[SignedDocument, Kit]:
    signed = sign_runbook(server_key, make_runbook(**overrides))
    return signed, make_kit(pin_for(signed, version=overrides.get("version", 1)))


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


# -- a real run ---------------------------------------------------------------------------------


async def test_a_pinned_runbook_runs_with_its_parameter(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(make_kit, server_key)

    result = await kit.run(signed, target="printer-2")

    assert isinstance(result, RunbookResult)
    assert (result.run_id, result.runbook_id, result.version) == (5, "rb-echo", 1)
    assert (result.exit_code, result.timed_out, result.truncated) == (0, False, False)
    assert result.stdout == "printer-2\n"
    recorder = kit.recorder
    (question,) = recorder.questions
    assert question.kind == "runbook"
    assert "Echo a target" in question.lines
    assert "  target = 'printer-2'" in question.lines
    assert "Reason given: DNS is stale" in question.lines
    assert "Time limit: 30 s" in question.lines
    (activity,) = recorder.activities
    assert activity.kind is ActivityKind.RUNBOOK_RUN
    assert (activity.runbook_id, activity.exit_code) == ("rb-echo", 0)
    assert activity.subject == "Echo a target (target='printer-2')"
    assert recorder.used == [Capability.RUNBOOKS]
    (entry,) = [e for e in recorder.log.events() if e["event"] == "runbook_run"]
    assert (entry["id"], entry["version"], entry["exit_code"], entry["timed_out"]) == (
        "rb-echo", 1, 0, False,
    )  # fmt: skip
    assert "Echo a target finished (exit code 0)" in recorder.feed_text()


async def test_a_spanish_session_is_asked_about_a_runbook_in_spanish(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(make_kit, server_key)
    recorder = kit.recorder
    services = recorder.services()
    services.feed.texts = ES
    kit.handler = RunbookHandler(services, server_key.public_key())
    recorder.answers = [ConsentDecision.REFUSED, ConsentDecision.GRANTED]

    refused = await kit.run(signed, target="printer-2")
    await kit.handler.wait_idle()
    result = await kit.run(signed, target="printer-2")

    # The technician's side stays as it is: a code and an English message.
    assert isinstance(refused, RunbookError)
    assert (refused.code, refused.message) == ("runbook.refused", "the person did not allow it")
    assert isinstance(result, RunbookResult) and result.exit_code == 0
    question = recorder.questions[0]
    assert question.title == f"{recorder.grant.technician_name} quiere ejecutar un script aprobado"
    assert (question.allow_label, question.refuse_label) == ("Ejecutarlo", "No ejecutar")
    assert question.lines == (
        "Echo a target",
        "Prints the target it was given.",  # the runbook's own words, as signed
        "  target = 'printer-2'",
        "Motivo: DNS is stale",
        "Tiempo máximo: 30 s",
        "Aprobado por Luis Pérez, escrito por Rosa Díaz",
    )
    feed = recorder.feed_text()
    assert "El script Echo a target no se ejecutó." in feed
    assert "Ejecutando el script aprobado Echo a target (target='printer-2')." in feed
    assert "El script Echo a target terminó (código de salida 0)." in feed


@pytest.mark.parametrize("template", INJECTIONS)
async def test_injection_attempts_reach_the_script_as_text(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path, template: str
) -> None:
    sentinel = tmp_path / "sentinel"
    value = template.format(sentinel=sentinel)
    # Unquoted too: expansion results are never parsed again as shell text.
    script = ECHO_TARGET + "echo $AUXILIO_PARAM_TARGET >/dev/null\n"
    signed, kit = signed_and_kit(make_kit, server_key, script=script)

    result = await kit.run(signed, target=value)

    assert isinstance(result, RunbookResult)
    assert result.exit_code == 0
    assert result.stdout == value + "\n"
    assert not sentinel.exists()


@pytest.mark.parametrize("template", INJECTIONS)
async def test_injection_attempts_as_arguments_reach_the_script_as_text(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path, template: str
) -> None:
    sentinel = tmp_path / "sentinel"
    value = template.format(sentinel=sentinel)
    parameters = (
        RunbookParameter(name="first", type="string", pass_as="argument", max_length=1000),
        RunbookParameter(name="count", type="integer", pass_as="argument"),
    )
    signed, kit = signed_and_kit(
        make_kit, server_key, script='printf "[%s]\\n" "$@"\n', parameters=parameters
    )

    result = await kit.run(signed, first=value, count=3)

    assert isinstance(result, RunbookResult)
    assert result.stdout == f"[{value}]\n[3]\n"
    assert not sentinel.exists()


@pytest.mark.parametrize("value", ["line one\nline two", "cr\rhere", "nul\x00byte", "esc\x1b[2J"])
async def test_control_characters_in_a_value_are_refused_before_anything_runs(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path, value: str
) -> None:
    sentinel = tmp_path / "sentinel"
    signed, kit = signed_and_kit(make_kit, server_key, script=f"touch {sentinel}\n")

    answer = await kit.run(signed, target=value + f"\ntouch {sentinel}")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.parameter_invalid"
    assert "'target'" in answer.message
    assert kit.recorder.questions == []
    assert not sentinel.exists()


async def test_the_script_runs_from_a_private_file_with_a_minimal_environment(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUXILIO_TEST_SECRET", "hunter2")
    script = 'stat -c %a "$0" "$(dirname "$0")"\necho "$0"\nenv\ncat\necho stdin-was-empty\n'
    signed, kit = signed_and_kit(make_kit, server_key, script=script)

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["600", "700"]
    # The private directory is removed after the run.
    assert not await asyncio.to_thread(os.path.exists, lines[2])
    assert "AUXILIO_PARAM_TARGET=x" in lines
    assert "hunter2" not in result.stdout
    assert lines[-1] == "stdin-was-empty"


async def test_python_runbooks_get_their_parameters_too(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    script = "import os, sys\nprint(os.environ['AUXILIO_PARAM_TARGET'], sys.flags.isolated)\n"
    signed, kit = signed_and_kit(make_kit, server_key, interpreter="python", script=script)

    result = await kit.run(signed, target="$(id)")

    assert isinstance(result, RunbookResult)
    assert result.stdout == "$(id) 1\n"


async def test_a_failing_script_reports_its_exit_code_and_errors(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(make_kit, server_key, script="echo broken >&2\nexit 3\n")

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    assert (result.exit_code, result.stderr) == (3, "broken\n")
    assert kit.recorder.activities[-1].exit_code == 3


async def test_output_past_the_limit_is_cut_and_says_so(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    script = f"head -c {MAX_RUNBOOK_OUTPUT + 5000} /dev/zero | tr '\\0' a\n"
    signed, kit = signed_and_kit(make_kit, server_key, script=script)

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    assert result.truncated is True
    assert result.stdout == "a" * MAX_RUNBOOK_OUTPUT


def test_a_result_of_escaped_output_is_cut_to_fit_one_frame() -> None:
    full = "\x01" * MAX_RUNBOOK_OUTPUT  # six bytes each once escaped in JSON
    result = RunbookResult(
        run_id=1, runbook_id="rb", version=1, exit_code=0, duration_ms=1, stdout=full, stderr=full
    )

    fitted = fit_in_frame(result)

    assert len(encode_app_message(fitted)) <= MAX_FRAME_PLAINTEXT
    assert fitted.truncated is True
    assert fitted.stdout and fitted.stderr


# -- the time limit and revocation --------------------------------------------------------------


async def test_a_runbook_over_its_time_limit_is_stopped_with_everything_it_started(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"echo $$ > {pids}\nsleep 30 &\necho $! >> {pids}\nwait\n"
    signed, kit = signed_and_kit(make_kit, server_key, script=script, timeout_seconds=1)

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    assert (result.timed_out, result.exit_code) == (True, None)
    shell, sleeper = (int(line) for line in pids.read_text().split())
    assert gone(shell)
    assert gone(sleeper)
    assert "stopped at the time limit" in kit.recorder.feed_text()
    assert kit.recorder.activities[-1].exit_code is None


@pytest.mark.skipif(shutil.which("setsid") is None, reason="needs setsid(1)")
async def test_a_child_that_left_the_process_group_is_stopped_too(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"setsid sleep 30 &\necho $! > {pids}\nwait\n"
    signed, kit = signed_and_kit(make_kit, server_key, script=script, timeout_seconds=1)

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    assert result.timed_out is True
    assert gone(int(pids.read_text()))


async def test_a_runbook_that_ignores_sigterm_is_killed(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"trap '' TERM\necho $$ > {pids}\nwhile :; do sleep 1; done\n"
    signed, kit = signed_and_kit(make_kit, server_key, script=script, timeout_seconds=1)

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    assert result.timed_out is True
    assert gone(int(pids.read_text()))


def _pid_in(pids: Path) -> int | None:
    text = pids.read_text().strip() if pids.exists() else ""
    return int(text) if text else None


async def _started(pids: Path) -> int:
    """The script's pid, once it has written it (it runs in a process of its own)."""
    async with asyncio.timeout(30):
        # Another process writes the file: there is no event to wait on.
        while (pid := _pid_in(pids)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return pid


async def test_revoking_runbooks_mid_run_stops_it(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    signed, kit = signed_and_kit(make_kit, server_key, script=f"echo $$ > {pids}\nsleep 30\n")
    await kit.handler.handle(RunbookRun(run_id=6, runbook=signed, parameters={"target": "x"}))
    shell = await _started(pids)

    kit.recorder.allowed.clear()
    answer = await kit.recorder.next_sent()

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.stopped"
    assert gone(shell)


async def test_closing_kills_the_run_and_sends_nothing(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    signed, kit = signed_and_kit(make_kit, server_key, script=f"echo $$ > {pids}\nsleep 30\n")
    await kit.handler.handle(RunbookRun(run_id=6, runbook=signed, parameters={"target": "x"}))
    shell = await _started(pids)

    await kit.handler.close()

    assert gone(shell)
    assert kit.recorder.sent.empty()


async def test_one_run_at_a_time(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    signed, kit = signed_and_kit(make_kit, server_key, script=f"echo $$ > {pids}\nsleep 30\n")
    await kit.handler.handle(RunbookRun(run_id=6, runbook=signed, parameters={"target": "x"}))
    await _started(pids)

    busy = await kit.run(signed, target="y")
    await kit.handler.close()

    assert isinstance(busy, RunbookError)
    assert (busy.ref, busy.code) == (5, "runbook.busy")


# -- refusals -----------------------------------------------------------------------------------


async def test_a_tampered_script_fails_its_signature(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    sentinel = tmp_path / "sentinel"
    signed, kit = signed_and_kit(make_kit, server_key, script=f"echo touch {sentinel}\n")
    body = b64url_decode(signed.body)
    tampered = SignedDocument(
        body=b64url_encode(body.replace(b"echo touch", b"     touch", 1)),
        signature=signed.signature,
    )

    answer = await kit.run(tampered, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.unsigned"
    assert not sentinel.exists()
    assert kit.recorder.questions == []


async def test_a_runbook_signed_by_another_key_is_unsigned(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    forged = sign_runbook(Ed25519PrivateKey.generate(), make_runbook())
    kit = make_kit(pin_for(forged))

    answer = await kit.run(forged, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.unsigned"


async def test_a_runbook_not_in_the_grant_is_refused(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed = sign_runbook(server_key, make_runbook())
    other = sign_runbook(server_key, make_runbook(runbook_id="rb-other"))
    kit = make_kit(pin_for(other, id="rb-other"))

    answer = await kit.run(signed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.not_in_grant"


async def test_the_same_runbook_with_another_digest_is_altered(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pinned = sign_runbook(server_key, make_runbook())
    sentinel = tmp_path / "sentinel"
    changed = sign_runbook(server_key, make_runbook(script=f"touch {sentinel}\n"))
    kit = make_kit(pin_for(pinned))

    answer = await kit.run(changed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.altered"
    assert not sentinel.exists()


async def test_a_runbook_of_another_organisation_is_refused(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(make_kit, server_key, organisation_id="org-other")

    answer = await kit.run(signed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.wrong_organisation"


async def test_a_runbook_for_another_platform_is_refused(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(make_kit, server_key, platforms=("windows",))

    answer = await kit.run(signed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.wrong_platform"


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"target": "x", "count": "3"}, "'count'"),  # text for an integer
        ({"target": "x", "count": True}, "'count'"),  # a boolean is not an integer
        ({"target": "x", "count": 99}, "'count'"),  # above its maximum
        ({"count": 2}, "'target'"),  # required and missing
        ({"target": 5, "count": 2}, "'target'"),  # a number for text
        ({"target": "x", "count": 2, "extra": "y"}, "'extra'"),  # not declared
        ({"target": "x", "count": 2, "mode": "reboot"}, "'mode'"),  # not one of the choices
    ],
)
async def test_parameters_of_the_wrong_type_are_refused_by_name(
    make_kit: Callable[..., Kit],
    server_key: Ed25519PrivateKey,
    parameters: dict[str, Any],
    named: str,
) -> None:
    declared = (
        RunbookParameter(name="target", type="string"),
        RunbookParameter(name="count", type="integer", minimum=1, maximum=10),
        RunbookParameter(name="mode", type="choice", choices=("soft", "hard"), required=False),
    )
    signed, kit = signed_and_kit(make_kit, server_key, parameters=declared)

    answer = await kit.run(signed, **parameters)

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.parameter_invalid"
    assert named in answer.message


@pytest.mark.parametrize("answer", [ConsentDecision.REFUSED, ConsentDecision.TIMED_OUT])
async def test_the_person_refusing_means_it_does_not_run(
    make_kit: Callable[..., Kit],
    server_key: Ed25519PrivateKey,
    tmp_path: Path,
    answer: ConsentDecision,
) -> None:
    sentinel = tmp_path / "sentinel"
    signed, kit = signed_and_kit(make_kit, server_key, script=f"touch {sentinel}\n")
    kit.recorder.answers.append(answer)

    refused = await kit.run(signed, target="x")

    assert isinstance(refused, RunbookError)
    assert refused.code == "runbook.refused"
    assert not sentinel.exists()
    (activity,) = kit.recorder.activities
    assert (activity.kind, activity.runbook_id) == (ActivityKind.RUNBOOK_REFUSED, "rb-echo")
    assert kit.recorder.used == []


async def test_a_pre_authorised_runbook_runs_without_a_question(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed = sign_runbook(server_key, make_runbook())
    kit = make_kit(pin_for(signed, consent=False))

    result = await kit.run(signed, target="x")

    assert isinstance(result, RunbookResult)
    assert kit.recorder.questions == []


async def test_runbooks_outside_the_grant_are_refused_unchecked(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(make_kit, server_key)
    kit.recorder.allowed.clear()

    answer = await kit.run(signed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.not_allowed"
    assert "runbooks are not allowed" in kit.recorder.feed_text()


@pytest.mark.skipif(
    bool(shutil.which("pwsh") or shutil.which("powershell")), reason="PowerShell is installed"
)
async def test_a_missing_interpreter_is_said_before_the_person_is_asked(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed, kit = signed_and_kit(
        make_kit, server_key, interpreter="powershell", script="Write-Output $env:X\n"
    )

    answer = await kit.run(signed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.interpreter_missing"
    assert kit.recorder.questions == []


async def test_an_internal_error_is_answered_and_shown(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(directory: Path, runbook: Runbook) -> Path:
        raise RuntimeError("a bug")

    monkeypatch.setattr(runbooks, "write_private_script", broken)
    signed, kit = signed_and_kit(make_kit, server_key)

    answer = await kit.run(signed, target="x")

    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.failed"
    assert "internal error stopped the run" in kit.recorder.feed_text()
