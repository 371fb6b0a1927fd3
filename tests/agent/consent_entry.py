"""A small program for the pexpect tests: the real consent prompt, from a real signed grant.

    python tests/agent/consent_entry.py STATE_DIR [--timeout N] [--default refused|granted]
                                        [--tamper signature|expired|device]

It makes a server key, uses the agent's device key from STATE_DIR, checks the offer exactly as
``auxilio agent join`` does, shows the prompt on this terminal, and prints one line
``RESULT {json}`` with the signed receipt, the device public key and the prompt text; a refused
grant prints ``REFUSED <code>`` and exits 1 without showing any prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from auxilio.agent.consent import ask_consent, sign_consent
from auxilio.agent.errors import AgentError
from auxilio.agent.grants import check_offer
from auxilio.agent.state import AgentState
from auxilio.agent.userinput import LineInput
from auxilio.crypto.keys import encode_public_key
from tests.agent.factories import make_grant, make_offer, now


async def main(args: argparse.Namespace) -> int:
    state = AgentState(Path(args.state_dir))
    server_key = Ed25519PrivateKey.generate()
    device_public = state.device_public_key
    overrides: dict[str, object] = {}
    # A grant signed by another key than the one the agent pinned.
    signer = Ed25519PrivateKey.generate() if args.tamper == "signature" else server_key
    if args.tamper == "expired":
        overrides["issued_at"] = now() - timedelta(hours=2)
    if args.tamper == "device":
        device_public = Ed25519PrivateKey.generate().public_key()
    signed, grant = make_grant(
        signer,
        device_public,
        X25519PrivateKey.generate(),
        timeout_seconds=args.timeout,
        on_timeout=args.default,
        **overrides,
    )
    offer = make_offer(signed, grant)
    console = Console(highlight=False)
    try:
        checked = check_offer(
            offer,
            server_key=server_key.public_key(),
            device_key=state.device_public_key,
            device_id=None,
            now=now(),
        )
    except AgentError as exc:
        print(f"REFUSED {exc.code}", flush=True)
        return 1
    result = await ask_consent(console, LineInput(), checked)
    signed_receipt, _ = sign_consent(state.device_key, checked, result)
    print(
        "RESULT "
        + json.dumps(
            {
                "receipt": signed_receipt.model_dump(mode="json"),
                "device_public_key": encode_public_key(state.device_public_key),
                "prompt_text": result.prompt_text,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("state_dir")
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--default", default="refused")
    parser.add_argument("--tamper", choices=["signature", "expired", "device"])
    sys.exit(asyncio.run(main(parser.parse_args())))
