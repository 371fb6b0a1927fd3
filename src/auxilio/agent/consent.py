"""The consent prompt (R1): check the offer, show it, ask one question per capability, sign.

The grant is verified before anything is shown (``grants.check_offer``); every word of the text
comes from the signed grant: who asks, which capabilities with their limits, until when, and its
signed ``terms`` (purposes, ticket, legal text, timeout and what silence means). Silence is a
refusal, whatever a grant says: an attended prompt that times out records ``timed_out``, never
a yes. The exact text printed is what the receipt hashes.

Lines an automated test can wait for (stable):

    Allow <capability>? [y/n]
    <capability>: granted | refused | timed out (refused)
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


def clock_text(moment: datetime) -> str:
    """A moment in the device's own time zone, with the zone's name."""
    local = moment.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "local time")


def consent_deadline(grant: Grant, started: datetime) -> datetime:
    """The prompt's deadline: its signed timeout from now, never past the offer's answer-by."""
    return min(started + timedelta(seconds=grant.terms.timeout_seconds), grant.terms.answer_by)


def render_prompt(grant: Grant, *, deadline: datetime) -> str:
    """The full prompt text, exactly as shown and hashed into the receipt."""
    terms = grant.terms
    purposes = {item.capability: item.purpose for item in terms.purposes}
    max_seconds = (grant.not_after - grant.issued_at).total_seconds()
    lines = [
        "Remote support request",
        "",
        f"Technician:       {grant.technician_name}",
        f"Organisation:     {grant.organisation_name}",
        f"Technician key:   {grant.technician_key_fingerprint}",
        f"Ticket:           {terms.ticket_ref or '(none)'}",
        f"Maximum duration: {_minutes(max_seconds)}, "
        f"ending at the latest at {clock_text(grant.not_after)}",
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
        terms.legal_text.strip(),
    ]
    if terms.privacy_notice.strip():
        lines += ["", terms.privacy_notice.strip()]
    lines += [
        "",
        "You are asked about each capability separately. You can end the session at any time.",
        f"Answer within {terms.timeout_seconds} seconds (until {clock_text(deadline)}). "
        "No answer means: refused.",
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ConsentResult:
    prompt_text: str
    decisions: dict[Capability, ConsentDecision]
    decided_at: datetime
    timeout_seconds: int

    def granted(self) -> frozenset[Capability]:
        return frozenset(
            name for name, decision in self.decisions.items() if decision is ConsentDecision.GRANTED
        )


YES_WORDS = {"y", "yes", "s", "si", "sí"}
NO_WORDS = {"n", "no"}


async def ask_consent(
    console: Console,
    lines: LineInput,
    grant: Grant,
    *,
    clock: Clock = utc_now,
) -> ConsentResult:
    """Show the prompt and ask about each capability of the grant until the deadline."""
    deadline = consent_deadline(grant, clock())
    text = render_prompt(grant, deadline=deadline)
    console.print(Rule("Auxilio: remote support request", style="bold yellow"))
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(Rule(style="bold yellow"))

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
        if word in YES_WORDS or word in NO_WORDS:
            decision = ConsentDecision.GRANTED if word in YES_WORDS else ConsentDecision.REFUSED
            decisions[item.capability] = decision
            _say(console, f"{item.capability}: {decision}")
            pending.pop(0)
        else:
            _say(console, "Please answer y (yes) or n (no).")
    for item in pending:
        decisions[item.capability] = ConsentDecision.TIMED_OUT
        _say(console, f"{item.capability}: timed out (refused)")
    return ConsentResult(
        prompt_text=text,
        decisions=decisions,
        decided_at=clock(),
        timeout_seconds=grant.terms.timeout_seconds,
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
        # What silence meant here: refusal, the only meaning an attended prompt gives it.
        timeout_default="refused",
    )
    # Read back through the verifier: the copy kept and shown is exactly what was signed.
    return signed, verify_receipt(device_key.public_key(), signed)


def _write(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, end="")


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)
