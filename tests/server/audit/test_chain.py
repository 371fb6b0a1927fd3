"""The pure hash chain and its verifier: every kind of tampering names the first broken event."""

from __future__ import annotations

import copy
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auxilio.server.audit.chain import (
    GENESIS_HASH,
    ChainVerifier,
    chain_hash,
    sign_checkpoint,
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


def verify(
    events: list[dict[str, Any]],
    *,
    checkpoints: list[dict[str, Any]] | None = None,
    head: dict[str, Any] | None = None,
) -> Any:
    verifier = ChainVerifier("c1", public_key=KEY.public_key(), checkpoints=checkpoints or [])
    for event in events:
        if not verifier.feed(event):
            break
    return verifier.finish(head=head)


def test_it_accepts_an_intact_chain_with_checkpoints_and_head() -> None:
    events = build(30)
    report = verify(
        events,
        checkpoints=[checkpoint(events, 10), checkpoint(events, 30)],
        head={"seq": 30, "hash": events[-1]["hash"]},
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
    report = verify(events[:8], head={"seq": 10, "hash": events[-1]["hash"]})
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
