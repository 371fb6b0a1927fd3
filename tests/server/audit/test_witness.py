"""The witness directory: append-only files that verify can read, and clear errors for any that
it cannot; the migration that signs the heads written before heads were signed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.server.audit.chain import GENESIS_HASH, head_signature_ok
from auxilio.server.audit.witness import FORMAT, DirectoryWitness, WitnessInvalid, read_witness
from auxilio.server.db.migrate import upgrade
from auxilio.server.keys import load_or_create_signing_key

CHAIN = "ab" * 16


def entry(seq: int, chain: str = CHAIN) -> dict[str, object]:
    return {
        "chain": chain,
        "seq": seq,
        "hash": f"{seq:064x}",
        "signed_at": "2026-12-01T09:00:00.000000Z",
        "key_id": "ed25519:test",
        "signature": "c2ln",
        "head": {"signed_at": "2026-12-01T09:00:00.000000Z", "signature": "c2ln"},
    }


def test_entries_are_appended_one_line_each_and_read_back_by_chain(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path / "w")
    witness.append(entry(50))
    witness.append(entry(100))
    witness.append(entry(7, chain="system"))
    found = read_witness([tmp_path / "w"])
    assert [e["seq"] for e in found[CHAIN]] == [50, 100]
    assert [e["seq"] for e in found["system"]] == [7]
    lines = (tmp_path / "w" / f"{CHAIN}.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["format"] for line in lines] == [FORMAT, FORMAT]


def test_entries_from_several_directories_are_merged(tmp_path: Path) -> None:
    DirectoryWitness(tmp_path / "node1").append(entry(50))
    DirectoryWitness(tmp_path / "node2").append(entry(100))
    found = read_witness([tmp_path / "node1", tmp_path / "node2"])
    assert sorted(e["seq"] for e in found[CHAIN]) == [50, 100]


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_entry(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path)
    witness.append(entry(50))
    with (tmp_path / f"{CHAIN}.jsonl").open("ab") as fh:
        fh.write(b'{"format": "auxilio-audit-wit')  # the crash
    witness.append(entry(100))
    lines = (tmp_path / f"{CHAIN}.jsonl").read_bytes().splitlines()
    assert orjson.loads(lines[2])["seq"] == 100
    with pytest.raises(WitnessInvalid, match=r"line 2 is not JSON"):
        read_witness([tmp_path])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "is not JSON"),
        (b'{"format": "other"}', "is not a witness entry"),
        (orjson.dumps({**entry(5), "format": FORMAT, "chain": "cd" * 16}), "belongs to chain"),
        (orjson.dumps({**entry(5), "format": FORMAT, "seq": "5"}), "no valid seq"),
        (orjson.dumps({**entry(5), "format": FORMAT, "seq": 0}), "no valid seq"),
        (orjson.dumps({**entry(5), "format": FORMAT, "hash": "xyz"}), "no valid hash"),
        (orjson.dumps({**entry(5), "format": FORMAT, "signature": None}), "is not signed"),
        (orjson.dumps({**entry(5), "format": FORMAT, "head": "x"}), "malformed head"),
    ],
)
def test_a_malformed_witness_line_is_named(tmp_path: Path, line: bytes, message: str) -> None:
    path = tmp_path / f"{CHAIN}.jsonl"
    path.write_bytes(orjson.dumps({**entry(1), "format": FORMAT}) + b"\n" + line + b"\n")
    with pytest.raises(WitnessInvalid, match=f"{path.name}: line 2 .*{message}"):
        read_witness([tmp_path])
    assert path.read_bytes().startswith(b"{")  # reading changes nothing


def test_a_chain_file_with_a_wrong_name_is_refused_and_other_files_are_left_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "README").write_text("witness of the audit log")
    assert read_witness([tmp_path]) == {}
    (tmp_path / "acme.jsonl").write_text("")
    with pytest.raises(WitnessInvalid, match="not named after a chain"):
        read_witness([tmp_path])


def test_a_missing_witness_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WitnessInvalid, match="no witness directory"):
        read_witness([tmp_path / "elsewhere"])


def test_the_upgrade_signs_the_heads_that_existed_before_heads_were_signed(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute(
            "INSERT INTO audit_heads (chain, seq, hash, updated_at) "
            "VALUES (?, 12, ?, '2026-11-30 10:00:00.123456')",
            (CHAIN, GENESIS_HASH.replace("0", "a")),
        )
    key_path = tmp_path / "keys" / "server-signing.pem"
    key: Ed25519PrivateKey = load_or_create_signing_key(key_path)
    upgrade(url, signing_key_path=key_path)
    with sqlite3.connect(tmp_path / "old.db") as conn:
        seq, digest, signature = conn.execute(
            "SELECT seq, hash, signature FROM audit_heads WHERE chain = ?", (CHAIN,)
        ).fetchone()
    head = {
        "seq": seq,
        "hash": digest,
        "signed_at": "2026-11-30T10:00:00.123456Z",
        "signature": signature,
    }
    assert head_signature_ok(key.public_key(), CHAIN, head)


def test_an_upgrade_without_the_key_leaves_old_heads_unsigned(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute(
            "INSERT INTO audit_heads (chain, seq, hash, updated_at) "
            "VALUES (?, 3, ?, '2026-11-30 10:00:00.000000')",
            (CHAIN, GENESIS_HASH),
        )
    upgrade(url)
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert conn.execute("SELECT signature FROM audit_heads").fetchone() == (None,)
