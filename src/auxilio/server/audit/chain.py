"""The audit hash chain: canonical form, hashing, checkpoints and the offline verifier.

Pure functions over plain dicts, so that ``auxilio audit verify`` needs only the rows (from the
database or an export file) and the server's public key.

    canonical(event) = JSON, keys sorted, no whitespace, UTF-8; times as ISO 8601 UTC with
                       microseconds and "Z"; UUIDs as 32 lowercase hex digits
    hash             = SHA-256(prev_hash_bytes || canonical(event)), hex
    genesis prev     = 32 zero bytes
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS_HASH = "0" * 64
SYSTEM_CHAIN = "system"
# Domain separation: a checkpoint signature can never be replayed as any other signed document.
CHECKPOINT_CONTEXT = b"auxilio/audit-checkpoint/v1\n"

# The fields that are hashed, in the order they are documented (the JSON itself sorts keys).
HASHED_FIELDS = (
    "chain",
    "seq",
    "occurred_at",
    "organisation_id",
    "actor_id",
    "actor_name",
    "client_addr",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "details",
)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps({name: event[name] for name in HASHED_FIELDS}, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(event)).hexdigest()


def checkpoint_message(chain: str, seq: int, hash_hex: str, signed_at: str) -> bytes:
    body = {"chain": chain, "hash": hash_hex, "seq": seq, "signed_at": signed_at}
    return CHECKPOINT_CONTEXT + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign_checkpoint(
    key: Ed25519PrivateKey, chain: str, seq: int, hash_hex: str, signed_at: str
) -> str:
    signature = key.sign(checkpoint_message(chain, seq, hash_hex, signed_at))
    return base64.urlsafe_b64encode(signature).decode()


def checkpoint_signature_ok(public_key: Ed25519PublicKey, checkpoint: Mapping[str, Any]) -> bool:
    message = checkpoint_message(
        checkpoint["chain"], checkpoint["seq"], checkpoint["hash"], checkpoint["signed_at"]
    )
    try:
        public_key.verify(base64.urlsafe_b64decode(checkpoint["signature"]), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Break:
    chain: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"chain {self.chain}: event {self.seq}: {self.reason}"


@dataclass(slots=True)
class ChainReport:
    chain: str
    events: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


class ChainVerifier:
    """Feeds on one chain's events in ``seq`` order and stops at the first broken link.

    It checks the seq runs 1, 2, 3... without gaps (a deleted or inserted row), that each
    ``prev_hash`` is the previous ``hash`` (reordering), that each ``hash`` is recomputed from
    the row (an edited row), that the signed checkpoints agree, and that the recorded head is
    reached (a deleted tail). Checkpoints are few, so they are taken up front; events stream.
    """

    def __init__(
        self,
        chain: str,
        *,
        public_key: Ed25519PublicKey | None,
        checkpoints: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.report = ChainReport(chain=chain)
        self._checkpoints: dict[int, str] = {}
        for cp in sorted(checkpoints, key=lambda c: c["seq"]):
            if public_key is not None and not checkpoint_signature_ok(public_key, cp):
                self.report.broken = Break(chain, cp["seq"], "checkpoint signature is invalid")
                break
            self._checkpoints[cp["seq"]] = cp["hash"]

    def feed(self, event: Mapping[str, Any]) -> bool:
        report = self.report
        if report.broken is not None:
            return False
        expected_seq = report.last_seq + 1
        seq = event["seq"]
        if seq != expected_seq:
            if seq > expected_seq:
                report.broken = Break(
                    report.chain, expected_seq, f"missing (found event {seq} next)"
                )
            else:
                report.broken = Break(
                    report.chain, seq, f"out of order or duplicated (expected {expected_seq})"
                )
            return False
        if event["prev_hash"] != report.last_hash:
            report.broken = Break(report.chain, seq, "prev_hash does not link to the event before")
            return False
        if chain_hash(report.last_hash, event) != event["hash"]:
            report.broken = Break(report.chain, seq, "contents changed (hash mismatch)")
            return False
        signed = self._checkpoints.get(seq)
        if signed is not None:
            if signed != event["hash"]:
                report.broken = Break(report.chain, seq, "does not match its signed checkpoint")
                return False
            report.checkpoints += 1
        report.events += 1
        report.last_seq = seq
        report.last_hash = event["hash"]
        return True

    def finish(self, *, head: Mapping[str, Any] | None = None) -> ChainReport:
        report = self.report
        if report.broken is not None:
            return report
        beyond = [seq for seq in self._checkpoints if seq > report.last_seq]
        if beyond:
            report.broken = Break(
                report.chain,
                report.last_seq + 1,
                f"missing (a signed checkpoint covers up to event {max(beyond)})",
            )
            return report
        if head is not None:
            if head["seq"] > report.last_seq:
                report.broken = Break(
                    report.chain, report.last_seq + 1, f"missing (the head is at {head['seq']})"
                )
            elif head["seq"] < report.last_seq:
                report.broken = Break(report.chain, head["seq"] + 1, "after the recorded head")
            elif head["hash"] != report.last_hash:
                report.broken = Break(report.chain, report.last_seq, "differs from recorded head")
        return report
