"""The pure hash chain and its verifier: every kind of tampering names the first broken event."""

from __future__ import annotations

import copy
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auxilio.server.audit.chain import (
    GENESIS_HASH,
    BreakCode,
    ChainVerifier,
    chain_hash,
    sign_checkpoint,
    sign_head,
)

KEY = Ed25519PrivateKey.generate()


def build(n: int, chain: str = "c1") -> list[dict[str, Any]]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event: dict[str, Any] = {
            "chain": chain,
            "seq": seq,
            "occurred_at": f"2026-01-01T00:00:{seq % 60:02d}.000000Z",
            "organisation_id": "ab" * 16,
            "actor_id": None,
            "actor_name": f"actor {seq}",
            "client_addr": "127.0.0.1",
            "action": "ticket:ticket:opened",
            "target_type": "ticket",
            "target_id": str(seq),
            "request_id": f"r{seq}",
            "details": {"n": seq, "text": "ñandú ✓"},
            "prev_hash": prev,
        }
        event["hash"] = prev = chain_hash(prev, event)
        events.append(event)
    return events


def checkpoint(
    events: list[dict[str, Any]], seq: int, key: Ed25519PrivateKey = KEY
) -> dict[str, Any]:
    event = events[seq - 1]
    signed_at = "2026-01-01T01:00:00.000000Z"
    return {
        "chain": event["chain"],
        "seq": seq,
        "hash": event["hash"],
        "signed_at": signed_at,
        "signature": sign_checkpoint(key, event["chain"], seq, event["hash"], signed_at),
    }


def signed_head(
    events: list[dict[str, Any]], seq: int | None = None, key: Ed25519PrivateKey = KEY
) -> dict[str, Any]:
    event = events[(seq or len(events)) - 1]
    at = event["occurred_at"]
    return {
        "seq": event["seq"],
        "hash": event["hash"],
        "signed_at": at,
        "signature": sign_head(key, event["chain"], event["seq"], event["hash"], at),
    }


def witnessed(events: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    """A witness entry as the server writes it: the checkpoint and the signed head at seq."""
    head = signed_head(events, seq)
    return {
        **checkpoint(events, seq),
        "head": {"signed_at": head["signed_at"], "signature": head["signature"]},
    }


def verify(
    events: list[dict[str, Any]],
    *,
    checkpoints: list[dict[str, Any]] | None = None,
    head: dict[str, Any] | None = None,
    witness: list[dict[str, Any]] | None = None,
) -> Any:
    verifier = ChainVerifier(
        "c1", public_key=KEY.public_key(), checkpoints=checkpoints or [], witness=witness or []
    )
    for event in events:
        if not verifier.feed(event):
            break
    return verifier.finish(head=head)


def test_it_accepts_an_intact_chain_with_checkpoints_and_head() -> None:
    events = build(30)
    report = verify(
        events,
        checkpoints=[checkpoint(events, 10), checkpoint(events, 30)],
        head=signed_head(events),
    )
    assert report.ok and report.events == 30 and report.checkpoints == 2


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=20),
    field=st.sampled_from(
        [
            "occurred_at",
            "actor_name",
            "client_addr",
            "action",
            "target_id",
            "request_id",
            "details",
            "organisation_id",
            "actor_id",
        ]
    ),
)
def test_it_names_the_event_whose_field_was_changed(seq: int, field: str) -> None:
    events = build(20)
    tampered = copy.deepcopy(events)
    tampered[seq - 1][field] = {"forged": True} if field == "details" else "forged"
    report = verify(tampered)
    assert not report.ok
    assert report.broken.seq == seq
    assert "hash mismatch" in report.broken.reason


def test_it_names_a_deleted_event() -> None:
    events = build(10)
    del events[4]
    report = verify(events)
    assert report.broken.seq == 5 and "missing" in report.broken.reason


def test_it_names_an_inserted_event_even_with_recomputed_hashes() -> None:
    events = build(10)
    forged = copy.deepcopy(events[3])
    forged["actor_name"] = "mallory"
    forged["hash"] = chain_hash(forged["prev_hash"], forged)
    events.insert(4, forged)
    report = verify(events)
    assert not report.ok and report.broken.seq == 4


def test_it_names_reordered_events() -> None:
    events = build(10)
    events[5], events[6] = events[6], events[5]
    report = verify(events)
    assert report.broken.seq == 6


def test_it_names_the_first_missing_event_when_the_tail_is_deleted() -> None:
    events = build(10)
    report = verify(events[:8], head=signed_head(events))
    assert report.broken.seq == 9 and "missing" in report.broken.reason


def test_a_signed_checkpoint_beyond_the_end_reveals_a_deleted_tail_without_a_head() -> None:
    events = build(10)
    report = verify(events[:7], checkpoints=[checkpoint(events, 10)])
    assert report.broken.seq == 8


def test_a_rewritten_chain_does_not_match_its_signed_checkpoint() -> None:
    events = build(10)
    cp = checkpoint(events, 10)
    # The attacker rewrites event 3 and recomputes every hash after it.
    events[2]["actor_name"] = "mallory"
    prev = events[1]["hash"]
    for event in events[2:]:
        event["prev_hash"] = prev
        event["hash"] = prev = chain_hash(prev, event)
    report = verify(events, checkpoints=[cp])
    assert report.broken.seq == 10 and "checkpoint" in report.broken.reason


def test_it_rejects_a_checkpoint_signed_by_another_key() -> None:
    events = build(5)
    report = verify(events, checkpoints=[checkpoint(events, 5, key=Ed25519PrivateKey.generate())])
    assert not report.ok and "signature" in report.broken.reason


def test_it_refuses_a_chain_without_a_head() -> None:
    report = verify(build(5))
    assert report.broken.code == BreakCode.HEAD_MISSING and report.broken.seq == 5


def test_it_refuses_an_unsigned_head() -> None:
    events = build(5)
    head = signed_head(events)
    del head["signature"]
    report = verify(events, head=head)
    assert report.broken.code == BreakCode.HEAD_SIGNATURE_INVALID


def test_it_refuses_a_head_signed_by_another_key() -> None:
    events = build(5)
    report = verify(events, head=signed_head(events, key=Ed25519PrivateKey.generate()))
    assert report.broken.code == BreakCode.HEAD_SIGNATURE_INVALID


def test_a_head_rewritten_over_a_deleted_tail_fails_its_signature() -> None:
    events = build(10)
    # The tail 8-10 is deleted and the head row rewritten to name event 7, keeping the old
    # signature (nobody without the server key can make a new one).
    forged = {**signed_head(events), "seq": 7, "hash": events[6]["hash"]}
    report = verify(events[:7], head=forged)
    assert report.broken.code == BreakCode.HEAD_SIGNATURE_INVALID
    assert "event 7" in report.broken.reason and "deleted" in report.broken.reason


def test_a_validly_signed_older_head_is_accepted_without_a_witness() -> None:
    # Why the witness exists: a head restored from a backup carries a valid signature.
    events = build(10)
    assert verify(events[:7], head=signed_head(events, 7)).ok


def test_the_witness_reveals_a_rollback_to_an_older_signed_head() -> None:
    events = build(10)
    report = verify(events[:7], head=signed_head(events, 7), witness=[witnessed(events, 9)])
    assert report.broken.code == BreakCode.ROLLED_BACK
    assert report.broken.seq == 8
    assert "ends at event 7" in report.broken.reason and "event 9" in report.broken.reason


def test_the_witness_reveals_a_history_rewritten_with_the_server_key() -> None:
    events = build(10)
    seen = witnessed(events, 6)
    # A holder of the server key rewrites event 3, rehashes, re-signs checkpoint and head.
    events[2]["actor_name"] = "mallory"
    prev = events[1]["hash"]
    for event in events[2:]:
        event["prev_hash"] = prev
        event["hash"] = prev = chain_hash(prev, event)
    report = verify(
        events, checkpoints=[checkpoint(events, 10)], head=signed_head(events), witness=[seen]
    )
    assert report.broken.code == BreakCode.REWRITTEN and report.broken.seq == 6


def test_two_signed_witness_entries_for_one_event_mean_a_rewritten_history() -> None:
    events = build(6)
    original = witnessed(events, 6)
    events[5]["actor_name"] = "mallory"
    events[5]["hash"] = chain_hash(events[4]["hash"], events[5])
    report = verify(events, head=signed_head(events), witness=[original, witnessed(events, 6)])
    assert report.broken.code == BreakCode.REWRITTEN and "two different" in report.broken.reason


def test_a_forged_witness_entry_is_refused() -> None:
    events = build(6)
    entry = witnessed(events, 4)
    entry["signature"] = checkpoint(events, 4, key=Ed25519PrivateKey.generate())["signature"]
    report = verify(events, head=signed_head(events), witness=[entry])
    assert report.broken.code == BreakCode.WITNESS_SIGNATURE_INVALID and report.broken.seq == 4


def test_a_chain_that_matches_its_witness_verifies_and_counts_the_witnessed_events() -> None:
    events = build(12)
    report = verify(
        events,
        checkpoints=[checkpoint(events, 6), checkpoint(events, 12)],
        head=signed_head(events),
        witness=[witnessed(events, 6), witnessed(events, 12)],
    )
    assert report.ok, report.broken
    assert report.witnessed == 2 and report.checkpoints == 2
