"""``auxilio admin auditor-key``: a 0600 private file, only the public half on the server,
rotation on request only, every change audited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from auxilio.cli import app as cli
from auxilio.crypto.keys import encode_public_key, fingerprint, load_auditor_key
from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.recordings.models import AuditorKey
from auxilio.server.settings import load_settings

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    result = runner.invoke(cli, ["admin", "create-org", "acme", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return data


def auditor_key(data_dir: Path, *args: str) -> object:
    return runner.invoke(
        cli, ["admin", "auditor-key", "--org", "acme", "--data-dir", str(data_dir), *args]
    )


async def _rows(data_dir: Path) -> tuple[list[AuditorKey], list[str]]:
    engine = create_engine(load_settings(data_dir=data_dir))
    try:
        async with create_sessionmaker(engine)() as db:
            keys = list(
                (await db.execute(select(AuditorKey).order_by(AuditorKey.created_at))).scalars()
            )
            actions = [
                a
                for (a,) in await db.execute(
                    select(AuditEvent.action)
                    .where(AuditEvent.action.like("recording:%"))
                    .order_by(AuditEvent.seq)
                )
            ]
    finally:
        await engine.dispose()
    return keys, actions


def rows(data_dir: Path) -> tuple[list[AuditorKey], list[str]]:
    return asyncio.run(_rows(data_dir))


def test_it_writes_the_private_half_0600_and_stores_only_the_public_half(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "auditor.pem"
    result = auditor_key(data_dir, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    private = load_auditor_key(out)
    assert fingerprint(private.public_key()) in result.output
    [key], actions = rows(data_dir)
    assert key.public_key == encode_public_key(private.public_key()) and key.retired_at is None
    assert actions == ["recording:auditor_key:created"]
    # Nothing under the data directory holds the private half.
    pem = out.read_bytes().strip().splitlines()[1]
    assert not [p for p in data_dir.rglob("*") if p.is_file() and pem in p.read_bytes()]


def test_a_second_key_needs_rotate_and_rotating_is_audited(data_dir: Path, tmp_path: Path) -> None:
    assert auditor_key(data_dir, "--out", str(tmp_path / "a.pem")).exit_code == 0
    refused = auditor_key(data_dir, "--out", str(tmp_path / "b.pem"))
    assert refused.exit_code == 1 and "auditor_key_exists" in refused.output
    assert not (tmp_path / "b.pem").exists()
    rotated = auditor_key(data_dir, "--out", str(tmp_path / "c.pem"), "--rotate")
    assert rotated.exit_code == 0, rotated.output
    old, new = rows(data_dir)[0]
    assert old.retired_at is not None and new.retired_at is None
    assert new.public_key == encode_public_key(load_auditor_key(tmp_path / "c.pem").public_key())
    assert rows(data_dir)[1] == ["recording:auditor_key:created", "recording:auditor_key:rotated"]


def test_it_never_overwrites_an_existing_key_file(data_dir: Path, tmp_path: Path) -> None:
    existing = tmp_path / "keep.pem"
    existing.write_bytes(b"the only copy")
    result = auditor_key(data_dir, "--out", str(existing))
    assert result.exit_code == 2 and "exists" in result.output
    assert existing.read_bytes() == b"the only copy"
    assert rows(data_dir) == ([], [])


def test_an_unknown_organisation_is_refused_and_no_file_is_left(
    data_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli,
        [
            "admin",
            "auditor-key",
            "--org",
            "nope",
            "--out",
            str(tmp_path / "k.pem"),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 1 and "organisation_not_found" in result.output
    assert not (tmp_path / "k.pem").exists()
