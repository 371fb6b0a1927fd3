"""The consent prompt, answered by a person through a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pexpect

from auxilio.crypto.keys import decode_ed25519_public_key
from auxilio.crypto.receipts import verify_receipt
from auxilio.protocol.types import SignedDocument

ENTRY = Path(__file__).with_name("consent_entry.py")


def spawn(state_dir: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        [str(ENTRY), str(state_dir), *args],
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 200),
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "PYTHONUNBUFFERED": "1"},
    )


def result_of(child: pexpect.spawn) -> dict[str, Any]:
    child.expect(r"RESULT (\{.*\})\r?\n")
    data: dict[str, Any] = json.loads(child.match.group(1))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    return data


def decisions_of(data: dict[str, Any]) -> dict[str, str]:
    receipt = verify_receipt(
        decode_ed25519_public_key(data["device_public_key"]),
        SignedDocument.model_validate(data["receipt"]),
    )
    return {item.capability: item.decision for item in receipt.decisions}


def test_person_grants_one_capability_and_refuses_another(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    child.expect(r"Technician: +Ana López \(Escuela Primaria Benito Juárez\)")
    child.expect(r"No answer: +within 1 minute means refused")
    child.expect(r"run commands as you: they can read every file your account can read")
    # The jargon is in the details, after the plain text.
    child.expect(r"Details \(for your IT department\)")
    child.expect(r"Technician key: +SHA256:")
    child.expect(r"Limits of terminal: +shell /bin/sh")
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("y")
    child.expect("chat: granted")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendline("n")
    child.expect("terminal: refused")
    assert decisions_of(result_of(child)) == {"chat": "granted", "terminal": "refused"}


def test_unclear_answer_is_asked_again(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("maybe")
    child.expect("Please answer y")
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("n")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendline("n")
    assert decisions_of(result_of(child)) == {"chat": "refused", "terminal": "refused"}


def test_timeout_applies_the_default_to_unanswered_capabilities(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--timeout", "2")
    child.expect(r"No answer: +within 2 seconds means refused")
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("y")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.expect(r"terminal: timed out \(refused\)", timeout=10)
    data = result_of(child)
    assert decisions_of(data) == {"chat": "granted", "terminal": "timed_out"}


def test_closed_input_refuses_what_is_still_open(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("y")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendeof()
    child.expect("terminal: refused")
    assert decisions_of(result_of(child)) == {"chat": "granted", "terminal": "refused"}


def test_receipt_verifies_with_the_device_key_and_hashes_the_text_shown(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    child.expect(r"Allow chat\? \[y/n\]")
    shown = child.before
    child.sendline("y")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendline("y")
    data = result_of(child)
    receipt = verify_receipt(
        decode_ed25519_public_key(data["device_public_key"]),
        SignedDocument.model_validate(data["receipt"]),
    )
    # Every line of the hashed text was on the person's screen, in order.
    screen = shown.replace("\r\n", "\n")
    position = 0
    for line in data["prompt_text"].splitlines():
        found = screen.find(line, position)
        assert found >= 0, f"not shown: {line!r}"
        position = found + len(line)
    assert receipt.prompt_sha256 == hashlib.sha256(data["prompt_text"].encode()).hexdigest()
    assert receipt.prompt_text == data["prompt_text"]
    # The device key is the one in the state directory, made on the first run.
    assert (tmp_path / "device-key.pem").exists()
