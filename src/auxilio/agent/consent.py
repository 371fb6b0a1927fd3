"""The consent prompt (R1): check the offer, show it, ask one question per capability, sign.

The grant is verified before anything is shown (``grants.check_offer``); every word of the text
comes from the signed grant: who asks, which capabilities with their limits, until when, and its
signed ``terms`` (purposes, ticket, legal text, privacy notice, timeout and what silence means),
or from the agent's own catalogue (``i18n``: labels and what each capability lets the technician
see and do, in the person's language). Silence is a
refusal, whatever a grant says: an attended prompt that times out records ``timed_out``, never
a yes. The exact text printed is what the receipt hashes.

Lines an automated test can wait for (stable; the question is asked in the person's language,
``¿Permitir <capability>? [s/n]`` in Spanish):

    Allow <capability>? [y/n]
    <capability>: granted | refused | timed out (refused)
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.rule import Rule

from auxilio.agent.i18n import EN, Texts
from auxilio.agent.userinput import LineInput, Signal
from auxilio.crypto.grants import Grant
from auxilio.crypto.receipts import ConsentReceipt, SignedReceipt, sign_receipt, verify_receipt
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits, ConsentDecision

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def zone_name() -> str | None:
    """The device's IANA time zone (``Europe/Madrid``) when it can be told: ``TZ``, else the
    ``/etc/localtime`` link. None where the system does not say (the abbreviation still shows)."""
    configured = os.environ.get("TZ", "").lstrip(":")
    if "/" in configured and not configured.startswith("/"):
        return configured
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else None


def clock_text(moment: datetime) -> str:
    """A moment in the device's own time zone, with the zone's name: the person reads their own
    clock, never UTC unless they live in it."""
    local = moment.astimezone()
    abbreviation = local.tzname() or "local time"
    zone = zone_name()
    named = f"{abbreviation}, {zone}" if zone and zone != abbreviation else abbreviation
    return local.strftime("%Y-%m-%d %H:%M:%S ") + f"({named})"


def short_fingerprint(full: str) -> str:
    """The first and last three groups of ``SHA256:3f2a 9c01 ...``: what people compare (96 bits,
    too many to grind a look-alike). The full fingerprint stays in the details."""
    groups = full.removeprefix("SHA256:").split()
    if len(groups) <= 6:
        return " ".join(groups)
    return " ".join(groups[:3]) + " … " + " ".join(groups[-3:])


def duration_words(seconds: float, texts: Texts) -> str:
    """``2 minutes``, ``45 seconds``: whole minutes where the duration is one, else seconds."""
    whole = max(1, math.ceil(seconds))
    if whole % 60 == 0 or whole > 600:
        count = max(1, math.ceil(whole / 60))
        return f"{count} {texts.minute if count == 1 else texts.minutes}"
    return f"{whole} {texts.second if whole == 1 else texts.seconds}"


def _limits_text(limits: CapabilityLimits, texts: Texts) -> str:
    parts: list[str] = []
    if limits.shell:
        parts.append(texts.limit_shell.format(shell=limits.shell))
    if limits.paths:
        parts.append(texts.limit_paths.format(paths=", ".join(limits.paths)))
    if limits.direction:
        parts.append(
            {"download": texts.limit_download, "upload": texts.limit_upload,
             "both": texts.limit_both}[limits.direction]
        )  # fmt: skip
    if limits.max_bytes is not None:
        parts.append(texts.limit_bytes.format(size=limits.max_bytes))
    return "; ".join(parts) if parts else texts.limit_none


def _aligned(rows: list[tuple[str, str]], indent: str = "") -> list[str]:
    width = max(len(label) for label, _ in rows) + 2
    return [f"{indent}{(label + ':').ljust(width)}{value}" for label, value in rows]


def consent_deadline(grant: Grant, started: datetime) -> datetime:
    """The prompt's deadline: its signed timeout from now, never past the offer's answer-by."""
    return min(started + timedelta(seconds=grant.terms.timeout_seconds), grant.terms.answer_by)


def render_prompt(grant: Grant, *, deadline: datetime, texts: Texts = EN) -> str:
    """The full prompt text, exactly as shown and hashed into the receipt.

    Plain words first (who, for how long, what each capability lets them see and do, what
    silence means, the legal text and privacy notice as the policy gives them); the technical
    details (full key fingerprint, policy version, limits) last, under their own heading.
    """
    terms = grant.terms
    purposes = {item.capability: item.purpose for item in terms.purposes}
    max_seconds = (grant.not_after - grant.issued_at).total_seconds()
    who = f"{grant.technician_name} ({grant.organisation_name})"
    silence = duration_words(terms.timeout_seconds, texts)
    lines = [texts.request_title, ""]
    lines += _aligned(
        [
            (texts.label_technician, who),
            (texts.label_key, short_fingerprint(grant.technician_key_fingerprint)),
            (texts.label_ticket, terms.ticket_ref or texts.no_ticket),
            (texts.label_longest, texts.longest_value.format(
                duration=duration_words(max_seconds, texts), end=clock_text(grant.not_after))),
            (texts.label_recorded, texts.yes if grant.recorded else texts.no),
            (texts.label_answer_by, texts.answer_by_value.format(end=clock_text(deadline))),
            (texts.label_silence, texts.silence_value.format(duration=silence)),
        ]
    )  # fmt: skip
    lines += ["", texts.asks_to]
    for number, item in enumerate(grant.capabilities, start=1):
        name = texts.capability_names[item.capability]
        if name.lower() != item.capability:
            name += f" ({item.capability})"  # the word for 'r <capability>' in the terminal
        lines.append(f"  {number}. {name}: {texts.capability_plain[item.capability]}")
        if purposes.get(item.capability):
            lines.append("     " + texts.purpose.format(purpose=purposes[item.capability]))
        if item.expires_at < grant.not_after:
            # Its own limit, shorter than the session's (the terminal's 30 minutes, say).
            own = duration_words((item.expires_at - grant.issued_at).total_seconds(), texts)
            lines.append("     " + texts.own_limit.format(
                duration=own, end=clock_text(item.expires_at)))  # fmt: skip
    lines += ["", terms.legal_text.strip()]
    if terms.privacy_notice.strip():
        lines += ["", terms.privacy_notice.strip()]
    lines += ["", texts.separately, "", texts.details]
    details = [
        (texts.details_key, grant.technician_key_fingerprint),
        (texts.details_policy, grant.policy_version),
    ]
    details += [
        (texts.details_limits.format(capability=item.capability), _limits_text(item.limits, texts))
        for item in grant.capabilities
    ]
    lines += _aligned(details, indent="  ")
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
    texts: Texts = EN,
) -> ConsentResult:
    """Show the prompt and ask about each capability of the grant until the deadline."""
    deadline = consent_deadline(grant, clock())
    text = render_prompt(grant, deadline=deadline, texts=texts)
    console.print(Rule(texts.consent_window_title, style="bold yellow"))
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(Rule(style="bold yellow"))

    decisions: dict[Capability, ConsentDecision] = {}
    pending: list[CapabilityGrant] = list(grant.capabilities)
    while pending:
        item = pending[0]
        left = (deadline - clock()).total_seconds()
        if left <= 0:
            break
        _write(console, texts.ask.format(capability=item.capability) + f" ({math.ceil(left)} s) ")
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
            _say(console, texts.please_answer)
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
