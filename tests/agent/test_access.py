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


# -- the owner's command line (auxilio agent access) ------------------------------------------


def enrolled(state: AgentState) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auxilio.agent.enroll import Enrolment, save_enrolment

    state.pin("http://127.0.0.1:9", Ed25519PrivateKey.generate().public_key())
    save_enrolment(state, Enrolment(server="http://127.0.0.1:9", device_id="dev-1",
                                    organisation_id="org-1", organisation_name="Escuela",
                                    device_group="aula", owner_name="Ana",
                                    enrolled_at="2026-12-01T10:00:00Z"))  # fmt: skip


def cli(state: AgentState, *args: str) -> Any:
    from typer.testing import CliRunner

    from auxilio.agent.cli import app

    return CliRunner().invoke(app, [*args, "--state-dir", str(state.root)])


def test_grant_with_the_defaults_is_this_week_working_hours(state: AgentState) -> None:
    enrolled(state)
    result = cli(state, "access", "grant", "--scope", "chat,terminal",
                 "--timezone", "Europe/Madrid")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Pre-authorised" in result.output
    assert "Mon-Fri 09:00-17:00 (Europe/Madrid)" in result.output
    (entry,) = AccessStore(state).all()
    window = entry.document.window
    assert window.weekdays == (0, 1, 2, 3, 4) and window.timezone == "Europe/Madrid"
    assert (window.daily_start, window.daily_end) == (dt.time(9), dt.time(17))
    assert window.not_after - window.not_before == dt.timedelta(days=7)
    assert entry.document.device_id == "dev-1" and entry.document.organisation_id == "org-1"
    assert entry.document.server_fingerprint == state.pinned("http://127.0.0.1:9").fingerprint  # type: ignore[union-attr]
    assert not entry.document.automated_runs

    listed = cli(state, "access", "list")
    assert listed.exit_code == 0 and entry.id in listed.output and "chat" in listed.output

    revoked = cli(state, "access", "revoke", entry.id[:8], "--reason", "done")
    assert revoked.exit_code == 0, revoked.output
    assert must(AccessStore(state), entry.id).revocation is not None
    assert "revoked" in cli(state, "access", "list").output


def test_grant_with_everything_given(state: AgentState) -> None:
    enrolled(state)
    result = cli(state, "access", "grant", "--scope", "diagnostics,runbooks", "--days", "sat,sun",
                 "--hours", "all", "--until", "2099-01-01", "--timezone", "UTC", "--automated",
                 "--note", "backups")  # fmt: skip
    assert result.exit_code == 1  # 2099 is past the longest window
    assert "access.window_too_long" in result.output
    result = cli(state, "access", "grant", "--scope", "diagnostics,runbooks", "--days", "sat,sun",
                 "--hours", "all", "--for", "30d", "--timezone", "UTC", "--automated",
                 "--note", "backups")  # fmt: skip
    assert result.exit_code == 0, result.output
    (entry,) = AccessStore(state).all()
    assert entry.document.automated_runs and entry.document.note == "backups"
    assert entry.document.window.weekdays == (5, 6) and entry.document.window.daily_start is None


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--scope", "chat,webcam"], "access.scope_unknown"),
        (["--scope", ","], "access.scope_empty"),
        (["--scope", "chat", "--days", "mon-fry"], "access.bad_days"),
        (["--scope", "chat", "--days", "mon,,fri"], "access.bad_days"),
        (["--scope", "chat", "--hours", "17:00-09:00"], "access.bad_hours"),
        (["--scope", "chat", "--hours", "25:00-26:00"], "access.bad_hours"),
        (["--scope", "chat", "--hours", "nine"], "access.bad_hours"),
        (["--scope", "chat", "--for", "7x"], "access.bad_duration"),
        (["--scope", "chat", "--for", "0d"], "access.bad_duration"),
        (["--scope", "chat", "--for", "400d"], "access.window_too_long"),
        (["--scope", "chat", "--until", "someday"], "access.bad_until"),
        (["--scope", "chat", "--until", "2020-01-01"], "access.bad_until"),
        (["--scope", "chat", "--for", "7d", "--until", "2099-01-01"], "access.for_and_until"),
        (["--scope", "chat", "--timezone", "Mars/Olympus"], "access.timezone_unknown"),
        (["--scope", "chat", "--automated"], "access.automated_needs_runbooks"),
        (["--scope", "chat", "--note", "x" * 501], "access.note_too_long"),
        (["--scope", "chat", "--for", "1h", "--days", "all", "--hours", "00:00-00:01"],
         "access.never_open"),
    ],
)  # fmt: skip
def test_bad_grants_are_refused_with_a_code(
    state: AgentState, args: list[str], code: str
) -> None:
    enrolled(state)
    if code == "access.never_open":
        # Shut for the hour from now whatever the time: one minute a day, not this one.
        now = dt.datetime.now(UTC)
        start = (now + dt.timedelta(hours=3)).strftime("%H:%M")
        end = (now + dt.timedelta(hours=3, minutes=1)).strftime("%H:%M")
        if end <= start:
            pytest.skip("the minute chosen crosses midnight")
        args = [*args[:-1], f"{start}-{end}", "--timezone", "UTC"]
    result = cli(state, "access", "grant", *args)
    assert result.exit_code == 1, result.output
    assert f"Error {code}:" in result.output
    assert AccessStore(state).all() == []


def test_grant_before_enrolment_is_refused(state: AgentState) -> None:
    result = cli(state, "access", "grant", "--scope", "chat")
    assert result.exit_code == 1 and "Error access.not_enrolled:" in result.output


def test_revoke_of_an_unknown_id_is_refused_on_the_command_line(state: AgentState) -> None:
    result = cli(state, "access", "revoke", "nope")
    assert result.exit_code == 1 and "Error access.unknown:" in result.output


def test_list_names_a_tampered_file(state: AgentState) -> None:
    enrolled(state)
    assert cli(state, "access", "grant", "--scope", "chat").exit_code == 0
    (path,) = (state.root / "access").glob("*.json")
    record = json.loads(path.read_text())
    record["document"]["signature"] = "A" * 86
    path.write_text(json.dumps(record))
    listed = cli(state, "access", "list")
    assert "No pre-authorisations" in listed.output
    assert "IGNORED (signature.invalid)" in listed.output


@pytest.mark.parametrize(
    ("text", "days"),
    [("mon-fri", (0, 1, 2, 3, 4)), ("fri-mon", (0, 4, 5, 6)), ("sat,sun", (5, 6)),
     ("all", tuple(range(7))), ("Monday,wed-thu", (0, 2, 3))],
)  # fmt: skip
def test_days(text: str, days: tuple[int, ...]) -> None:
    from auxilio.agent.access import parse_days

    assert parse_days(text) == days


def test_hours() -> None:
    from auxilio.agent.access import parse_hours

    assert parse_hours("9-17") == (dt.time(9), dt.time(17))
    assert parse_hours("08:30-12:00") == (dt.time(8, 30), dt.time(12))
    assert parse_hours("all") is None
