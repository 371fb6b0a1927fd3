"""The consent prompt (R1): check the offer, show it, ask one question per capability, sign.

The grant is verified before anything is shown (``grants.check_offer``); the text shown is built
from the signed grant first (who, which capabilities, until when) and from the unsigned prompt only
for what the grant does not carry (purposes, ticket, legal text, timeout). A capability the prompt
lists but the grant does not is never shown nor asked. The exact text printed is what the receipt
hashes.

Lines an automated test can wait for (stable):

    Allow <capability>? [y/n]
    <capability>: granted | refused | timed out (refused) | timed out (granted)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.rule import Rule

from auxilio.agent.userinput import LineInput, Signal
from auxilio.crypto.grants import Grant
from auxilio.crypto.receipts import ConsentReceipt, SignedReceipt, sign_receipt, verify_receipt
from auxilio.protocol.frames import ConsentPrompt
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits, ConsentDecision

Clock = Callable[[], datetime]

DESCRIPTIONS: dict[Capability, str] = {
    Capability.CHAT: "exchange chat messages with you",
    Capability.TERMINAL: "run commands in a terminal on this device, as your user",
    Capability.FILES: "list, read or write files on this device",
    Capability.DIAGNOSTICS: "collect system information (hardware, processes, network)",
    Capability.RUNBOOKS: "run approved repair scripts on this device",
    Capability.SCREEN: "see your screen",
    Capability.INPUT: "control your mouse and keyboard",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def _limits_text(limits: CapabilityLimits) -> str:
    parts: list[str] = []
    if limits.shell:
        parts.append(f"shell {limits.shell}")
    if limits.paths:
        parts.append("only under " + ", ".join(limits.paths))
    if limits.direction:
        parts.append(
            {"download": "from this device to the technician", "upload": "to this device",
             "both": "both ways"}[limits.direction]
        )  # fmt: skip
    if limits.max_bytes is not None:
        parts.append(f"at most {limits.max_bytes} bytes")
    return "; ".join(parts) if parts else "none beyond the session's time limit"


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


def _clock_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_prompt(grant: Grant, prompt: ConsentPrompt, *, deadline: datetime) -> str:
    """The full prompt text, exactly as shown and hashed into the receipt."""
    purposes = {item.capability: item.purpose for item in prompt.capabilities}
    max_seconds = min(
        prompt.max_duration_seconds, (grant.not_after - grant.issued_at).total_seconds()
    )
    default = prompt.timeout_default
    lines = [
        "Remote support request",
        "",
        f"Technician:       {grant.technician_name}",
        f"Organisation:     {grant.organisation_name}",
        f"Technician key:   {grant.technician_key_fingerprint}",
        f"Ticket:           {prompt.ticket_ref or '(none)'}",
        f"Maximum duration: {_minutes(max_seconds)}, "
        f"ending at the latest at {_clock_text(grant.not_after)}",
        f"Recorded:         {'yes' if grant.recorded else 'no'}",
        f"Policy version:   {grant.policy_version}",
        "",
        "The technician asks to:",
    ]
    for number, item in enumerate(grant.capabilities, start=1):
        lines.append(f"  {number}. {item.capability}: {DESCRIPTIONS[item.capability]}")
        if purposes.get(item.capability):
            lines.append(f"     purpose: {purposes[item.capability]}")
        lines.append(f"     limits: {_limits_text(item.limits)}")
    lines += [
        "",
        prompt.legal_text.strip(),
        "",
        "You are asked about each capability separately. You can end the session at any time.",
        f"Answer within {prompt.timeout_seconds} seconds (until {_clock_text(deadline)}). "
        f"No answer means: {default}.",
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ConsentResult:
    prompt_text: str
    decisions: dict[Capability, ConsentDecision]
    decided_at: datetime
    timeout_seconds: int
    timeout_default: str

    def granted(self) -> frozenset[Capability]:
        return frozenset(
            name for name, decision in self.decisions.items() if decision is ConsentDecision.GRANTED
        )


_YES = {"y", "yes", "s", "si", "sí"}
_NO = {"n", "no"}


async def ask_consent(
    console: Console,
    lines: LineInput,
    grant: Grant,
    prompt: ConsentPrompt,
    *,
    clock: Clock = utc_now,
) -> ConsentResult:
    """Show the prompt and ask about each capability of the grant until the deadline."""
    started = clock()
    deadline = started + timedelta(seconds=prompt.timeout_seconds)
    text = render_prompt(grant, prompt, deadline=deadline)
    console.print(Rule("Auxilio: remote support request", style="bold yellow"))
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(Rule(style="bold yellow"))

    on_timeout = (
        ConsentDecision.GRANTED
        if prompt.timeout_default == "granted"
        else ConsentDecision.TIMED_OUT
    )
    decisions: dict[Capability, ConsentDecision] = {}
    pending: list[CapabilityGrant] = list(grant.capabilities)
    while pending:
        item = pending[0]
        left = (deadline - clock()).total_seconds()
        if left <= 0:
            break
        _write(console, f"Allow {item.capability}? [y/n] ({math.ceil(left)} s left) ")
        try:
            async with asyncio.timeout(left):
                answer = await lines.get()
        except TimeoutError:
            _write(console, "\n")
            break
        if answer is Signal.INTERRUPT or answer is Signal.EOF:
            # Ctrl-C or a closed input is a refusal of everything still open, never a yes.
            _write(console, "\n")
            for rest in pending:
                decisions[rest.capability] = ConsentDecision.REFUSED
                _say(console, f"{rest.capability}: refused")
            pending = []
            break
        word = answer.strip().lower()
        if word in _YES or word in _NO:
            decision = ConsentDecision.GRANTED if word in _YES else ConsentDecision.REFUSED
            decisions[item.capability] = decision
            _say(console, f"{item.capability}: {decision}")
            pending.pop(0)
        else:
            _say(console, "Please answer y (yes) or n (no).")
    for item in pending:
        decisions[item.capability] = on_timeout
        _say(console, f"{item.capability}: timed out ({prompt.timeout_default})")
    return ConsentResult(
        prompt_text=text,
        decisions=decisions,
        decided_at=clock(),
        timeout_seconds=prompt.timeout_seconds,
        timeout_default=prompt.timeout_default,
    )


def sign_consent(
    device_key: Ed25519PrivateKey, grant: Grant, result: ConsentResult
) -> tuple[SignedReceipt, ConsentReceipt]:
    signed = sign_receipt(
        device_key,
        support_session_id=grant.support_session_id,
        device_id=grant.device_id,
        grant_nonce=grant.nonce,
        prompt_text=result.prompt_text,
        decisions=result.decisions,
        decided_at=result.decided_at,
        timeout_seconds=result.timeout_seconds,
        timeout_default="granted" if result.timeout_default == "granted" else "refused",
    )
    # Read back through the verifier: the copy kept and shown is exactly what was signed.
    return signed, verify_receipt(device_key.public_key(), signed)


def _write(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, end="")


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)
