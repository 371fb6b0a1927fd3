"""Automated runs on the device: every refusal is a signed outcome with its code; a real example
runbook runs; a diagnostics collection is the session's collection of the sections named."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.agent.access import AccessStore
from auxilio.agent.automation import busy, handle_order
from auxilio.agent.state import AgentState
from auxilio.crypto.automation import AutomationOrder, AutomationOutcome, sign_order, verify_outcome
from auxilio.crypto.keys import b64url_encode, encode_public_key, fingerprint
from auxilio.crypto.preauth import AccessWindow
from auxilio.crypto.runbooks import Runbook, sign_runbook
from auxilio.protocol.frames import (
    MAX_CONTROL_MESSAGE_BYTES,
    AutomationResult,
    encode_message,
    parse_message,
)
from auxilio.protocol.types import Capability, SignedDocument
from auxilio.runbooks import load_example

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
ORG, DEVICE = "org-1", "dev-1"
# One server key for the module: the owner's pre-authorisations name its fingerprint.
SERVER_KEY = Ed25519PrivateKey.generate()


@pytest.fixture(autouse=True)
def _now() -> None:
    """NOW is each test's own start: taken at import, it was the collection's time, and a test
    run more than ten minutes later (the orders' lifetime) found every order expired."""
    global NOW  # read by the helpers below at call time
    NOW = dt.datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def server_key() -> Ed25519PrivateKey:
    return SERVER_KEY


@pytest.fixture
def state(tmp_path: Path) -> AgentState:
    return AgentState(tmp_path / "agent")


@pytest.fixture
def access(state: AgentState) -> AccessStore:
    return AccessStore(state)


def window(**changes: Any) -> AccessWindow:
    fields: dict[str, Any] = dict(not_before=NOW - dt.timedelta(days=1),
                                  not_after=NOW + dt.timedelta(days=6))
    fields.update(changes)
    return AccessWindow.model_validate(fields)


def pre_authorise(access: AccessStore, **changes: Any) -> str:
    fields: dict[str, Any] = dict(
        device_id=DEVICE, organisation_id=ORG,
        server_fingerprint=fingerprint(SERVER_KEY.public_key()),
        owner_name="Ana", scope=(Capability.DIAGNOSTICS, Capability.RUNBOOKS),
        window=window(), automated_runs=True,
    )  # fmt: skip
    fields.update(changes)
    return access.grant(**fields).id


def example_runbook(server_key: Ed25519PrivateKey, runbook_id: str = "collect-logs",
                    **changes: Any) -> SignedDocument:
    fields = dict(load_example(runbook_id).fields)
    fields.update(
        organisation_id=ORG, runbook_id=runbook_id, version=1, author_id="u-1",
        author_name="Author", approved_by_id="u-2", approved_by_name="Approver",
        approved_at=NOW - dt.timedelta(days=1),
    )  # fmt: skip
    fields.update(changes)
    return sign_runbook(server_key, Runbook.model_validate(fields))


def make_order(state: AgentState, pre_authorisation_id: str, **changes: Any) -> AutomationOrder:
    fields: dict[str, Any] = dict(
        run_id="run-1", organisation_id=ORG, device_id=DEVICE,
        device_public_key=encode_public_key(state.device_public_key),
        pre_authorisation_id=pre_authorisation_id, kind="diagnostics",
        sections=("os", "memory"), ticket_ref="#7 Slow laptop", issued_at=NOW,
        not_after=NOW + dt.timedelta(minutes=10), nonce=b64url_encode(secrets.token_bytes(16)),
    )  # fmt: skip
    fields.update(changes)
    return AutomationOrder.model_validate(fields)


Run = Callable[..., Any]


@pytest.fixture
def run(state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey) -> Run:
    async def go(order: AutomationOrder | SignedDocument, *, key: Ed25519PrivateKey | None = None,
                 **kwargs: Any) -> tuple[AutomationResult, AutomationOutcome]:
        signed = order if isinstance(order, SignedDocument) else sign_order(key or server_key,
                                                                            order)
        message = await handle_order(signed, state=state, access=access,
                                     server_public_key=server_key.public_key(),
                                     device_id=kwargs.pop("device_id", DEVICE), **kwargs)
        # What goes on the wire: fits one control message and parses back.
        wire = encode_message(message)
        assert len(wire.encode()) <= MAX_CONTROL_MESSAGE_BYTES
        assert isinstance(parse_message(wire), AutomationResult)
        return message, verify_outcome(state.device_public_key, message.result)

    return go


# -- what runs ------------------------------------------------------------------------------------


async def test_a_diagnostics_collection_returns_the_sections_named(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    order = make_order(state, pre_authorise(access))
    message, outcome = await run(order)
    assert message.run_id == "run-1" and outcome.run_id == "run-1"
    assert outcome.nonce == order.nonce
    assert outcome.status == "done" and outcome.code is None
    report = json.loads(outcome.output)
    assert report["os"]["available"] is True and "total" in report["memory"]
    assert "processes" not in report and "disks" not in report
    # The owner's local record of it.
    record = json.loads((state.root / "automation" / "run-1.json").read_text())
    assert record["status"] == "done" and record["kind"] == "diagnostics"
    assert record["output_sha256"] == outcome.output_sha256
    assert record["ticket_ref"] == "#7 Slow laptop"


async def test_an_example_runbook_runs_for_real(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=example_runbook(server_key), params={"lines": 5})
    _, outcome = await run(order, platform="linux")
    content = json.loads(outcome.output)
    assert content["runbook_id"] == "collect-logs" and content["version"] == 1
    assert content["timed_out"] is False and outcome.exit_code == content["exit_code"]
    assert outcome.status == ("done" if content["exit_code"] == 0 else "failed")
    assert content["stdout"] or content["stderr"]


async def test_a_runbook_that_fails_is_failed_with_its_exit_code(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    runbook = example_runbook(server_key, script="echo out; echo err >&2; exit 3\n",
                              parameters=[])
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=runbook)
    _, outcome = await run(order, platform="linux")
    assert (outcome.status, outcome.code, outcome.exit_code) == ("failed",
                                                                 "runbook.exit_nonzero", 3)
    content = json.loads(outcome.output)
    assert (content["stdout"], content["stderr"]) == ("out\n", "err\n")


async def test_a_runbook_past_its_own_time_limit_is_stopped(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    runbook = example_runbook(server_key, script="sleep 30\n", parameters=[], timeout_seconds=1)
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=runbook)
    _, outcome = await run(order, platform="linux")
    assert (outcome.status, outcome.code) == ("failed", "runbook.timed_out")
    assert json.loads(outcome.output)["timed_out"] is True


async def test_a_revocation_mid_run_stops_it(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    preauth = pre_authorise(access)
    runbook = example_runbook(server_key, script="sleep 30\n", parameters=[])
    order = make_order(state, preauth, kind="runbook", sections=(), runbook=runbook)
    import asyncio

    task = asyncio.ensure_future(run(order, platform="linux"))
    await asyncio.sleep(0.5)
    access.revoke(preauth, "changed my mind")
    _, outcome = await asyncio.wait_for(task, 10)
    assert (outcome.status, outcome.code) == ("failed", "automation.stopped")


async def test_large_output_is_bounded_to_fit_one_message(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    # Control characters: JSON escapes each as six bytes, base64 adds a third.
    runbook = example_runbook(server_key, parameters=[],
                              script="head -c 300000 /dev/zero | tr '\\0' '\\001'\n")
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=runbook)
    _, outcome = await run(order, platform="linux")
    assert outcome.truncated and outcome.status == "done"
    assert json.loads(outcome.output)["truncated"] is True


# -- refusals -------------------------------------------------------------------------------------


async def refused(run: Run, order: Any, **kwargs: Any) -> str:
    _, outcome = await run(order, **kwargs)
    assert outcome.status == "refused" and outcome.exit_code is None
    assert outcome.code is not None
    return outcome.code


async def test_an_order_signed_by_another_server_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    order = make_order(state, pre_authorise(access))
    assert await refused(run, order, key=Ed25519PrivateKey.generate()) == (
        "automation.order_invalid")
    # Nothing was collected or remembered: the genuine order still runs.
    _, outcome = await run(order)
    assert outcome.status == "done"


async def test_a_garbled_order_is_refused_as_unknown(run: Run) -> None:
    message, outcome = await run(SignedDocument(body="AAAA", signature="A" * 86))
    assert message.run_id == "unknown" and outcome.code == "automation.order_invalid"


async def test_orders_that_do_not_verify_leave_no_record(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    """Answered with a signed refusal, but nothing is written per message (a proxy injecting
    them must not grow the device's state); a verified order is recorded."""
    preauth = pre_authorise(access)
    for number in range(3):
        order = make_order(state, preauth, run_id=f"forged-{number}")
        assert await refused(run, order, key=Ed25519PrivateKey.generate()) == (
            "automation.order_invalid")
    seen: list[str] = []
    _, outcome = await run(make_order(state, preauth, run_id="run-2"),
                           on_verified=lambda order: seen.append(order.run_id))  # fmt: skip
    assert outcome.status == "done" and seen == ["run-2"]
    assert sorted(p.name for p in (state.root / "automation").iterdir()) == ["run-2.json"]


async def test_a_pre_authorisation_for_another_server_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    other = fingerprint(Ed25519PrivateKey.generate().public_key())
    preauth = pre_authorise(access, server_fingerprint=other)
    assert await refused(run, make_order(state, preauth)) == "pre_authorisation.wrong_server"


def test_a_busy_refusal_is_signed_and_names_the_order(
    state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    order = make_order(state, pre_authorise(access), run_id="run-5")
    message = busy(sign_order(server_key, order), state=state)
    outcome = verify_outcome(state.device_public_key, message.result)
    assert (message.run_id, outcome.run_id, outcome.nonce) == ("run-5", "run-5", order.nonce)
    assert (outcome.status, outcome.code) == ("refused", "automation.busy")
    assert not (state.root / "automation").exists()


async def test_an_order_for_another_device_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    preauth = pre_authorise(access)
    assert await refused(run, make_order(state, preauth, device_id="dev-2"),
                         device_id=DEVICE) == "automation.wrong_device"
    other_key = encode_public_key(Ed25519PrivateKey.generate().public_key())
    assert await refused(run, make_order(state, preauth, device_public_key=other_key)) == (
        "automation.wrong_device")


async def test_an_expired_order_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    order = make_order(state, pre_authorise(access), issued_at=NOW - dt.timedelta(hours=2),
                       not_after=NOW - dt.timedelta(hours=1))
    assert await refused(run, order) == "automation.expired"


async def test_a_replayed_order_is_refused(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    signed = sign_order(server_key, make_order(state, pre_authorise(access)))
    _, first = await run(signed)
    assert first.status == "done"
    assert await refused(run, signed) == "automation.replayed"


async def test_an_unknown_pre_authorisation_is_refused(run: Run, state: AgentState) -> None:
    assert await refused(run, make_order(state, "no-such-one")) == "pre_authorisation.unknown"


async def test_another_devices_pre_authorisation_is_unknown(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    preauth = pre_authorise(access, device_id="dev-2")
    assert await refused(run, make_order(state, preauth)) == "pre_authorisation.unknown"


async def test_a_revoked_pre_authorisation_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    preauth = pre_authorise(access)
    access.revoke(preauth, "no more")
    assert await refused(run, make_order(state, preauth)) == "pre_authorisation.revoked"


async def test_a_pre_authorisation_without_automated_runs_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    preauth = pre_authorise(access, automated_runs=False)
    assert await refused(run, make_order(state, preauth)) == "automation.not_pre_authorised"


async def test_a_capability_outside_the_scope_is_refused(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    preauth = pre_authorise(access, scope=(Capability.DIAGNOSTICS,))
    order = make_order(state, preauth, kind="runbook", sections=(),
                       runbook=example_runbook(server_key))
    assert await refused(run, order) == "pre_authorisation.scope"


async def test_outside_the_window_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    shut = [d for d in range(7) if d != NOW.weekday()]
    preauth = pre_authorise(access, window=window(weekdays=tuple(shut)))
    assert await refused(run, make_order(state, preauth)) == "pre_authorisation.outside_window"


async def test_an_expired_pre_authorisation_is_outside_its_window(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    preauth = pre_authorise(access, window=window(
        not_before=NOW - dt.timedelta(days=3), not_after=NOW - dt.timedelta(days=1)))
    assert await refused(run, make_order(state, preauth)) == "pre_authorisation.outside_window"


@pytest.mark.parametrize(("changes", "code"), [
    ({"organisation_id": "org-2"}, "runbook.wrong_organisation"),
    ({"platforms": ["windows"]}, "runbook.wrong_platform"),
    ({"interpreter": "powershell", "platforms": ["linux"]}, "runbook.interpreter_missing"),
])  # fmt: skip
async def test_runbook_checks(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey,
    changes: dict[str, Any], code: str,
) -> None:
    import shutil

    if code == "runbook.interpreter_missing" and (shutil.which("pwsh")
                                                  or shutil.which("powershell")):
        pytest.skip("PowerShell is installed here")
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=example_runbook(server_key, **changes))
    assert await refused(run, order, platform="linux") == code


async def test_a_runbook_not_signed_by_the_server_is_refused(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=example_runbook(Ed25519PrivateKey.generate()))
    assert await refused(run, order, platform="linux") == "runbook.unsigned"


async def test_a_bad_parameter_is_refused(
    run: Run, state: AgentState, access: AccessStore, server_key: Ed25519PrivateKey
) -> None:
    order = make_order(state, pre_authorise(access), kind="runbook", sections=(),
                       runbook=example_runbook(server_key), params={"lines": 999999})
    assert await refused(run, order, platform="linux") == "runbook.parameter_invalid"


async def test_a_refusal_is_in_the_local_log(
    run: Run, state: AgentState, access: AccessStore
) -> None:
    await refused(run, make_order(state, "no-such-one", run_id="run-9"))
    record = json.loads((state.root / "automation" / "run-9.json").read_text())
    assert (record["status"], record["code"]) == ("refused", "pre_authorisation.unknown")
    assert orjson.loads((state.root / "automation" / "run-9.json").read_bytes())
