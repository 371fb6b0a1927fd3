"""The owner's pre-authorisations on the device: signed, stored 0600, verified on every read."""

from __future__ import annotations

import datetime as dt
import json
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auxilio.agent.access import AccessEntry, AccessStore
from auxilio.agent.errors import AgentError
from auxilio.agent.state import AgentState
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.preauth import AccessWindow, verify_pre_authorisation, verify_revocation
from auxilio.protocol.types import Capability, SignedDocument

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 2, 16, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Mexico City
WEEK = AccessWindow(
    not_before=dt.datetime(2026, 11, 30, tzinfo=UTC),
    not_after=dt.datetime(2026, 12, 7, tzinfo=UTC),
    weekdays=(0, 1, 2, 3, 4),
    daily_start=dt.time(9, 0),
    daily_end=dt.time(17, 0),
    timezone="America/Mexico_City",
)


def grant(store: AccessStore, **overrides: object) -> AccessEntry:
    fields: dict[str, object] = {
        "device_id": "dev-1", "organisation_id": "org-1", "server_fingerprint": "SHA256:abcd ef01",
        "owner_name": "Ana", "scope": (Capability.CHAT, Capability.TERMINAL), "window": WEEK,
        "now": NOW - dt.timedelta(hours=1),
    }  # fmt: skip
    fields.update(overrides)
    return store.grant(**fields)  # type: ignore[arg-type]


def must(store: AccessStore, entry_id: str) -> AccessEntry:
    entry = store.get(entry_id)
    assert entry is not None
    return entry


def test_grant_is_signed_by_the_device_and_stored_private(state: AgentState) -> None:
    store = AccessStore(state)
    entry = store.grant(
        device_id="dev-1", organisation_id="org-1", server_fingerprint="SHA256:abcd ef01",
        owner_name="Ana", scope=[Capability.CHAT], window=WEEK, note="printer", now=NOW,
    )  # fmt: skip
    assert verify_pre_authorisation(state.device_public_key, entry.signed) == entry.document
    assert entry.document.scope == (Capability.CHAT,) and entry.document.note == "printer"
    path = state.root / "access" / f"{entry.id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    assert record["revocation"] is None and record["published"] is False
    assert not entry.published and not entry.revoked and entry.revoked_at is None
    assert store.get(entry.id) == entry
    assert [e.id for e in store.all()] == [entry.id]
    # Another store on the same directory (the service, the command) sees the same entry.
    assert AccessStore(state.root).get(entry.id) == entry


def test_live_leaves_out_revoked_and_expired(state: AgentState) -> None:
    store = AccessStore(state)
    live = grant(store)
    gone = grant(store)
    old = grant(store, window=AccessWindow(not_before=NOW - dt.timedelta(days=3),
                                           not_after=NOW - dt.timedelta(days=1)))  # fmt: skip
    store.revoke(gone.id, "no longer needed", now=NOW)
    assert [e.id for e in store.live(NOW)] == [live.id]
    states = {e.id: e.state(NOW) for e in store.all()}
    assert states == {live.id: "open", gone.id: "revoked", old.id: "expired"}
    assert must(store, live.id).state(NOW + dt.timedelta(hours=8)) == "waiting"


def test_revoke_signs_a_revocation_once(state: AgentState) -> None:
    store = AccessStore(state)
    entry = grant(store)
    revoked = store.revoke(entry.id, "done", now=NOW)
    assert revoked.revoked and revoked.revoked_at == NOW and not revoked.revocation_published
    assert revoked.revocation_signed is not None
    revocation = verify_revocation(state.device_public_key, revoked.revocation_signed)
    assert revocation.pre_authorisation_id == entry.id and revocation.reason == "done"
    again = store.revoke(entry.id, "other", now=NOW + dt.timedelta(hours=1))
    assert again.revocation_signed == revoked.revocation_signed


def test_revoke_of_an_unknown_id_is_refused(state: AgentState) -> None:
    store = AccessStore(state)
    for bad in ("nope", "../receipts/x", ".lock"):
        with pytest.raises(AgentError) as caught:
            store.revoke(bad)
        assert caught.value.code == "access.unknown"
        assert store.get(bad) is None


def test_acknowledgements_are_kept(state: AgentState) -> None:
    store = AccessStore(state)
    entry = grant(store)
    store.mark_published(entry.id, "stored")
    assert must(store, entry.id).published
    store.revoke(entry.id)
    assert not must(store, entry.id).revocation_published
    store.mark_published(entry.id, "revoked")
    after = store.get(entry.id)
    assert after is not None and after.revoked and after.revocation_published
    store.mark_published("unknown-id", "stored")  # an ack for a file not here: ignored


def _tamper(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_a_document_edited_by_hand_is_left_out(state: AgentState) -> None:
    store = AccessStore(state)
    entry = grant(store)
    path = state.root / "access" / f"{entry.id}.json"

    def widen(record: dict[str, object]) -> None:
        signed = SignedDocument.model_validate(record["document"])
        body = json.loads(b64url_decode(signed.body))
        body["payload"]["scope"] = ["chat", "terminal", "files"]
        record["document"] = {"body": b64url_encode(json.dumps(body).encode()),
                              "signature": signed.signature}  # fmt: skip

    _tamper(path, widen)
    assert store.all() == [] and store.get(entry.id) is None
    assert store.problems() == {path.name: "signature.invalid"}


def test_a_removed_or_broken_revocation_still_counts(state: AgentState) -> None:
    store = AccessStore(state)
    entry = grant(store)
    other = grant(store)
    store.revoke(entry.id)
    path = state.root / "access" / f"{entry.id}.json"
    other_revocation = store.revoke(other.id).revocation_signed
    assert other_revocation is not None

    # A revocation of another document pasted in: still revoked (never live again).
    _tamper(path, lambda r: r.update(revocation=other_revocation.model_dump(mode="json")))
    broken = store.get(entry.id)
    assert broken is not None and broken.revoked and broken.revocation_problem
    assert store.live(NOW) == []
    # Revoking again signs a fresh, good revocation.
    fixed = store.revoke(entry.id)
    assert fixed.revocation is not None and fixed.revocation_problem is None


def test_misfiled_document_is_left_out(state: AgentState) -> None:
    store = AccessStore(state)
    entry = grant(store)
    src = state.root / "access" / f"{entry.id}.json"
    src.rename(state.root / "access" / "other.json")
    assert store.all() == [] and store.problems() == {"other.json": "access.misfiled"}


def test_concurrent_ack_and_revoke_lose_nothing(state: AgentState) -> None:
    store = AccessStore(state)
    entry = grant(store)
    other = AccessStore(state.root)
    errors: list[BaseException] = []

    def acks() -> None:
        try:
            for _ in range(30):
                other.mark_published(entry.id, "stored")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=acks)
    thread.start()
    store.revoke(entry.id)
    thread.join()
    assert not errors
    final = store.get(entry.id)
    assert final is not None and final.revocation is not None and final.published
