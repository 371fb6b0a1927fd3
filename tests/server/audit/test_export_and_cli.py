"""Export files and ``auxilio audit verify``: offline, with only the public key."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from auxilio.cli import app as cli
from auxilio.server.audit.export import ExportFileInvalid, verify_export
from auxilio.server.keys import load_public_key, public_path
from auxilio.server.settings import load_settings

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A real data directory with a few audited changes made through the CLI."""
    data = tmp_path / "data"
    for i, role in enumerate(["admin", "technician", "end_user"]):
        result = runner.invoke(
            cli,
            [
                "admin",
                "create-user",
                f"p{i}@example.org",
                "--role",
                role,
                "--org",
                "acme",
                "--password-stdin",
                "--data-dir",
                str(data),
            ],
            input="a long enough password\n",
        )
        assert result.exit_code == 0, result.output
    return data


def sqlite(data: Path, sql: str) -> None:
    import sqlite3

    with sqlite3.connect(data / "auxilio.db") as conn:
        conn.execute(sql)


def test_verify_exits_zero_on_an_intact_log(data_dir: Path) -> None:
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output


def test_verify_exits_nonzero_naming_an_edited_event(data_dir: Path) -> None:
    sqlite(data_dir, "UPDATE audit_events SET action = 'identity:user:deactivated' WHERE seq = 3")
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "BROKEN at event 3" in result.output


def test_verify_exits_nonzero_naming_a_deleted_event(data_dir: Path) -> None:
    sqlite(data_dir, "DELETE FROM audit_events WHERE seq = 2")
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "BROKEN at event 2" in result.output


def test_an_export_verifies_offline_and_a_tampered_export_does_not(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "audit.jsonl"
    result = runner.invoke(
        cli, ["audit", "export", "-o", str(out), "--org", "acme", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    # Only the public key goes with the file.
    key_file = tmp_path / "server.pub.pem"
    key_file.write_bytes(
        public_path(load_settings(data_dir=data_dir).signing_key_path).read_bytes()
    )
    ok = runner.invoke(
        cli, ["audit", "verify", "--export", str(out), "--public-key", str(key_file)]
    )
    assert ok.exit_code == 0, ok.output

    lines = out.read_bytes().splitlines()
    event_lines = [i for i, line in enumerate(lines) if orjson.loads(line)["type"] == "event"]
    record = orjson.loads(lines[event_lines[1]])
    record["actor_name"] = "someone else"
    lines[event_lines[1]] = orjson.dumps(record)
    out.write_bytes(b"\n".join(lines) + b"\n")
    bad = runner.invoke(
        cli, ["audit", "verify", "--export", str(out), "--public-key", str(key_file)]
    )
    assert bad.exit_code == 1
    assert f"BROKEN at event {record['seq']}" in bad.output


def test_a_truncated_export_is_named_as_missing_events(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    runner.invoke(cli, ["audit", "export", "-o", str(out), "--data-dir", str(data_dir)])
    lines = out.read_bytes().splitlines()
    # Drop the last event but keep the head line: the head names what is missing.
    last_event = max(i for i, line in enumerate(lines) if orjson.loads(line)["type"] == "event")
    del lines[last_event]
    key = load_public_key(public_path(load_settings(data_dir=data_dir).signing_key_path))
    reports = verify_export(lines, public_key=key)
    assert any(not r.ok and "missing" in r.broken.reason for r in reports if r.broken)


def test_a_file_that_is_not_an_export_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ExportFileInvalid, match="line 1"):
        verify_export([b"not json"], public_key=None)
    with pytest.raises(ExportFileInvalid, match="before the header"):
        verify_export([b'{"type": "event"}'], public_key=None)
    with pytest.raises(ExportFileInvalid, match="no chain"):
        verify_export([], public_key=None)


def test_create_user_refuses_an_unknown_role_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = runner.invoke(
        cli,
        [
            "admin",
            "create-user",
            "x@example.org",
            "--role",
            "wizard",
            "--org",
            "acme",
            "--password-stdin",
            "--data-dir",
            str(data),
        ],
        input="a long enough password\n",
    )
    assert result.exit_code == 2
    assert not (data / "auxilio.db").exists()


def test_create_user_prints_the_totp_uri_for_staff_only(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    staff = runner.invoke(
        cli,
        [
            "admin",
            "create-user",
            "t@example.org",
            "--role",
            "technician",
            "--org",
            "acme",
            "--password-stdin",
            "--data-dir",
            data,
            "--skills",
            "network",
            "--hours",
            "mon-fri 09:00-17:00",
        ],
        input="a long enough password\n",
    )
    assert "otpauth://totp/" in staff.output
    user = runner.invoke(
        cli,
        [
            "admin",
            "create-user",
            "u@example.org",
            "--role",
            "end_user",
            "--org",
            "acme",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        input="a long enough password\n",
    )
    assert user.exit_code == 0 and "otpauth://" not in user.output


def _create_user(data: Path, email: str) -> None:
    result = runner.invoke(
        cli,
        ["admin", "create-user", email, "--role", "end_user", "--org", "acme",
         "--password-stdin", "--data-dir", str(data)],
        input="a long enough password\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def _copy_database(source: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_verify_fails_naming_a_chain_whose_head_row_was_deleted(data_dir: Path) -> None:
    sqlite(data_dir, "DELETE FROM audit_heads")
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "(acme)" in result.output and "head is missing [audit.head_missing]" in result.output


def test_verify_fails_naming_an_organisation_whose_whole_chain_was_deleted(
    data_dir: Path,
) -> None:
    for table in ("audit_events", "audit_heads", "audit_checkpoints"):
        sqlite(data_dir, f"DELETE FROM {table}")  # noqa: S608 -- fixed table names
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "(acme)" in result.output and "[audit.chain_missing]" in result.output


def test_verify_fails_when_the_tail_is_cut_and_the_head_rewritten(data_dir: Path) -> None:
    sqlite(data_dir, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    sqlite(
        data_dir,
        "UPDATE audit_heads SET seq = seq - 1, hash = (SELECT hash FROM audit_events e "
        "WHERE e.chain = audit_heads.chain AND e.seq = audit_heads.seq - 1)",
    )
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "[audit.head_signature_invalid]" in result.output


def test_verify_with_the_witness_catches_a_database_restored_from_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUXILIO_AUDIT_CHECKPOINT_EVERY", "2")
    data = tmp_path / "data"
    _create_user(data, "first@example.org")
    _copy_database(data / "auxilio.db", tmp_path / "backup.db")
    for i in range(3):
        _create_user(data, f"later{i}@example.org")
    intact = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data)])
    assert intact.exit_code == 0, intact.output
    assert f"witness: {data / 'witness'}" in intact.output
    _copy_database(tmp_path / "backup.db", data / "auxilio.db")  # the rollback
    alone = runner.invoke(cli, ["audit", "verify", "--no-witness", "--data-dir", str(data)])
    assert alone.exit_code == 0, alone.output  # every signature in the backup is valid
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "rolled back: the database ends at event" in result.output
    assert "[audit.rolled_back]" in result.output
    moved = tmp_path / "elsewhere"
    (data / "witness").rename(moved)
    explicit = runner.invoke(
        cli, ["audit", "verify", "--witness", str(moved), "--data-dir", str(data)]
    )
    assert explicit.exit_code == 1 and "[audit.rolled_back]" in explicit.output


def test_verify_refuses_a_witness_it_cannot_read(data_dir: Path, tmp_path: Path) -> None:
    missing = runner.invoke(
        cli, ["audit", "verify", "--witness", str(tmp_path / "nowhere"), "--data-dir",
              str(data_dir)],
    )  # fmt: skip
    assert missing.exit_code == 2 and "no witness directory" in missing.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "system.jsonl").write_text("garbage\n")
    result = runner.invoke(
        cli, ["audit", "verify", "--witness", str(bad), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 2 and "line 1 is not JSON" in result.output
    both = runner.invoke(
        cli, ["audit", "verify", "--witness", str(bad), "--no-witness", "--data-dir",
              str(data_dir)],
    )  # fmt: skip
    assert both.exit_code == 2


def test_an_export_without_its_head_line_fails(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    runner.invoke(cli, ["audit", "export", "-o", str(out), "--data-dir", str(data_dir)])
    lines = [line for line in out.read_bytes().splitlines() if orjson.loads(line)["type"] != "head"]
    key = load_public_key(public_path(load_settings(data_dir=data_dir).signing_key_path))
    reports = verify_export(lines, public_key=key)
    assert reports and all(r.broken and r.broken.code == "audit.head_missing" for r in reports)
