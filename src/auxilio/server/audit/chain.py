"""The audit hash chain: canonical form, hashing, checkpoints and the offline verifier.

Pure functions over plain dicts, so that ``auxilio audit verify`` needs only the rows (from the
database or an export file) and the server's public key.

    canonical(event) = JSON, keys sorted, no whitespace, UTF-8; times as ISO 8601 UTC with
                       microseconds and "Z"; UUIDs as 32 lowercase hex digits
    hash             = SHA-256(prev_hash_bytes || canonical(event)), hex
    genesis prev     = 32 zero bytes

The head (the chain's last event) is signed on every append, and the checkpoints every N events
or T seconds; both signatures cover (chain, seq, hash, signed_at) under their own context string.
A witness outside the database (``witness.py``) keeps a copy of each checkpoint, so that a
database rolled back to an older, validly signed state is still caught.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS_HASH = "0" * 64
SYSTEM_CHAIN = "system"
# Domain separation: a checkpoint signature can never be replayed as any other signed document.
CHECKPOINT_CONTEXT = b"auxilio/audit-checkpoint/v1\n"
HEAD_CONTEXT = b"auxilio/audit-head/v1\n"

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


def chain_for(organisation_id: uuid.UUID | None) -> str:
    """The chain of an organisation (its id in hex), or the system chain."""
    return organisation_id.hex if organisation_id is not None else SYSTEM_CHAIN


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps({name: event[name] for name in HASHED_FIELDS}, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(event)).hexdigest()


def _signed_message(context: bytes, chain: str, seq: int, hash_hex: str, signed_at: str) -> bytes:
    body = {"chain": chain, "hash": hash_hex, "seq": seq, "signed_at": signed_at}
    return context + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def checkpoint_message(chain: str, seq: int, hash_hex: str, signed_at: str) -> bytes:
    return _signed_message(CHECKPOINT_CONTEXT, chain, seq, hash_hex, signed_at)


def head_message(chain: str, seq: int, hash_hex: str, signed_at: str) -> bytes:
    return _signed_message(HEAD_CONTEXT, chain, seq, hash_hex, signed_at)


def _sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.urlsafe_b64encode(key.sign(message)).decode()


def sign_checkpoint(
    key: Ed25519PrivateKey, chain: str, seq: int, hash_hex: str, signed_at: str
) -> str:
    return _sign(key, checkpoint_message(chain, seq, hash_hex, signed_at))


def sign_head(key: Ed25519PrivateKey, chain: str, seq: int, hash_hex: str, signed_at: str) -> str:
    return _sign(key, head_message(chain, seq, hash_hex, signed_at))


def _signature_ok(public_key: Ed25519PublicKey, signature: Any, message: bytes) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        public_key.verify(base64.urlsafe_b64decode(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_signature_ok(public_key: Ed25519PublicKey, checkpoint: Mapping[str, Any]) -> bool:
    try:
        message = checkpoint_message(
            checkpoint["chain"], checkpoint["seq"], checkpoint["hash"], checkpoint["signed_at"]
        )
    except (KeyError, TypeError):
        return False
    return _signature_ok(public_key, checkpoint.get("signature"), message)


def head_signature_ok(public_key: Ed25519PublicKey, chain: str, head: Mapping[str, Any]) -> bool:
    try:
        message = head_message(chain, head["seq"], head["hash"], head["signed_at"])
    except (KeyError, TypeError):
        return False
    return _signature_ok(public_key, head.get("signature"), message)


class BreakCode(StrEnum):
    """Why a chain failed verification: stable values, printed by ``auxilio audit verify``."""

    EVENT_MISSING = "audit.event_missing"
    EVENT_OUT_OF_ORDER = "audit.event_out_of_order"
    LINK_BROKEN = "audit.link_broken"
    HASH_MISMATCH = "audit.hash_mismatch"
    MALFORMED_EVENT = "audit.malformed_event"
    FOREIGN_EVENT = "audit.foreign_event"
    CHECKPOINT_MISMATCH = "audit.checkpoint_mismatch"
    CHECKPOINT_SIGNATURE_INVALID = "audit.checkpoint_signature_invalid"
    CHAIN_MISSING = "audit.chain_missing"
    HEAD_MISSING = "audit.head_missing"
    HEAD_SIGNATURE_INVALID = "audit.head_signature_invalid"
    HEAD_MISMATCH = "audit.head_mismatch"
    ROLLED_BACK = "audit.rolled_back"
    REWRITTEN = "audit.rewritten"
    WITNESS_SIGNATURE_INVALID = "audit.witness_signature_invalid"


@dataclass(frozen=True, slots=True)
class Break:
    chain: str
    seq: int
    reason: str
    code: BreakCode

    def __str__(self) -> str:
        return f"chain {self.chain}: event {self.seq}: {self.reason} [{self.code}]"


@dataclass(slots=True)
class ChainReport:
    chain: str
    events: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    broken: Break | None = None
    # The organisation's slug when the chain was found through the organisations table.
    organisation: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass(frozen=True, slots=True)
class _Pin:
    """What is known about one seq from outside the events: a checkpoint, a witness entry."""

    checkpoint: str | None = None
    witness: str | None = None
    witnessed_at: str = ""


class ChainVerifier:
    """Feeds on one chain's events in ``seq`` order and stops at the first broken link.

    It checks the seq runs 1, 2, 3... without gaps (a deleted or inserted row), that each
    ``prev_hash`` is the previous ``hash`` (reordering), that each ``hash`` is recomputed from
    the row (an edited row), that the signed checkpoints and the witness agree (a rewritten
    history), and at the end that the signed head names the last event (a deleted tail, a
    missing head) and that nothing the checkpoints or the witness saw is missing (a rollback).
    Checkpoints and witness entries are few, so they are taken up front; events stream.
    """

    def __init__(
        self,
        chain: str,
        *,
        public_key: Ed25519PublicKey | None,
        checkpoints: Iterable[Mapping[str, Any]] = (),
        witness: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.report = ChainReport(chain=chain)
        self._public_key = public_key
        pins: dict[int, _Pin] = {}
        for cp in sorted(checkpoints, key=lambda c: c["seq"]):
            if public_key is not None and not checkpoint_signature_ok(public_key, cp):
                self._break(
                    cp["seq"],
                    "checkpoint signature is invalid",
                    BreakCode.CHECKPOINT_SIGNATURE_INVALID,
                )
                break
            pins[cp["seq"]] = _Pin(checkpoint=cp["hash"])
        # The latest signed head the witness saw: the database must reach at least that far.
        self._witness_top: tuple[int, str] = (0, "")
        for entry in sorted(witness, key=lambda e: e["seq"]):
            if self.report.broken is None:
                self._take_witness(entry, pins)
        self._pins = pins

    def _break(self, seq: int, reason: str, code: BreakCode) -> None:
        if self.report.broken is None:
            self.report.broken = Break(self.report.chain, seq, reason, code)

    def _take_witness(self, entry: Mapping[str, Any], pins: dict[int, _Pin]) -> None:
        seq, digest, at = entry["seq"], entry["hash"], entry["signed_at"]
        key = self._public_key
        if key is not None and not (
            checkpoint_signature_ok(key, {**entry, "chain": self.report.chain})
            and (
                entry.get("head") is None
                or head_signature_ok(
                    key, self.report.chain, {**entry["head"], "seq": seq, "hash": digest}
                )
            )
        ):
            self._break(
                seq,
                "the witness entry is not signed by this server key",
                BreakCode.WITNESS_SIGNATURE_INVALID,
            )
            return
        pin = pins.get(seq, _Pin())
        if pin.witness is not None and pin.witness != digest:
            # Only the server key can sign both: a key holder rewrote history after it was seen.
            self._break(
                seq,
                f"the witness holds two different signed hashes for this event "
                f"(signed at {pin.witnessed_at} and {at}): history was rewritten",
                BreakCode.REWRITTEN,
            )
            return
        pins[seq] = _Pin(checkpoint=pin.checkpoint, witness=digest, witnessed_at=at)
        if seq >= self._witness_top[0]:
            self._witness_top = (seq, at)

    def feed(self, event: Mapping[str, Any]) -> bool:
        report = self.report
        if report.broken is not None:
            return False
        expected_seq = report.last_seq + 1
        seq = event["seq"]
        if seq != expected_seq:
            if seq > expected_seq:
                self._break(
                    expected_seq, f"missing (found event {seq} next)", BreakCode.EVENT_MISSING
                )
            else:
                self._break(
                    seq,
                    f"out of order or duplicated (expected {expected_seq})",
                    BreakCode.EVENT_OUT_OF_ORDER,
                )
            return False
        if event["prev_hash"] != report.last_hash:
            self._break(seq, "prev_hash does not link to the event before", BreakCode.LINK_BROKEN)
            return False
        if chain_hash(report.last_hash, event) != event["hash"]:
            self._break(seq, "contents changed (hash mismatch)", BreakCode.HASH_MISMATCH)
            return False
        pin = self._pins.get(seq)
        if pin is not None and not self._pinned(pin, seq, event["hash"]):
            return False
        report.events += 1
        report.last_seq = seq
        report.last_hash = event["hash"]
        return True

    def _pinned(self, pin: _Pin, seq: int, digest: str) -> bool:
        report = self.report
        if pin.witness is not None:
            if pin.witness != digest:
                self._break(
                    seq,
                    f"differs from the witness (signed at {pin.witnessed_at}): "
                    "the history was rewritten after it was witnessed",
                    BreakCode.REWRITTEN,
                )
                return False
            report.witnessed += 1
        if pin.checkpoint is not None:
            if pin.checkpoint != digest:
                self._break(
                    seq, "does not match its signed checkpoint", BreakCode.CHECKPOINT_MISMATCH
                )
                return False
            report.checkpoints += 1
        return True

    def finish(self, *, head: Mapping[str, Any] | None) -> ChainReport:
        """End of the events. ``head`` is the chain's recorded head (seq, hash, signed_at,
        signature), or None when there is none: a chain without a head is broken."""
        report = self.report
        if report.broken is not None:
            return report
        last = report.last_seq
        beyond = [seq for seq, pin in self._pins.items() if seq > last and pin.checkpoint]
        if beyond:
            self._break(
                last + 1,
                f"missing (a signed checkpoint covers up to event {max(beyond)})",
                BreakCode.EVENT_MISSING,
            )
            return report
        top, top_at = self._witness_top
        if top > last:
            self._break(
                last + 1,
                f"rolled back: the database ends at event {last}, the witness "
                f"holds a signed head at event {top} (signed at {top_at})",
                BreakCode.ROLLED_BACK,
            )
            return report
        self._check_head(head)
        return report

    def _check_head(self, head: Mapping[str, Any] | None) -> None:
        last = self.report.last_seq
        if head is None:
            if last == 0:
                self._break(
                    1, "missing: the chain has no events and no head", BreakCode.CHAIN_MISSING
                )
            else:
                self._break(last, "the chain's head is missing", BreakCode.HEAD_MISSING)
            return
        if self._public_key is not None and not head_signature_ok(
            self._public_key, self.report.chain, head
        ):
            self._break(
                min(head["seq"], last) or 1,
                f"the head's signature is missing or invalid: the head row (event {head['seq']})"
                " was rewritten, and events after it may have been deleted",
                BreakCode.HEAD_SIGNATURE_INVALID,
            )
        elif head["seq"] > last:
            self._break(
                last + 1, f"missing (the head is at {head['seq']})", BreakCode.EVENT_MISSING
            )
        elif head["seq"] < last:
            self._break(head["seq"] + 1, "after the recorded head", BreakCode.HEAD_MISMATCH)
        elif head["hash"] != self.report.last_hash:
            self._break(last, "differs from recorded head", BreakCode.HEAD_MISMATCH)
