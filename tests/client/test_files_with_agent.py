"""The technician's file transfers against the agent's real ``FileHandler``, in one process: the
zone question (no reason, refused, then allowed), both directions, a resumed download."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.capabilities.files import FileHandler
from auxilio.client.files import PART_SUFFIX, FileTransfers
from auxilio.client.tools import ToolError
from auxilio.protocol.app import AppMessage
from auxilio.protocol.types import Capability, CapabilityLimits, ConsentDecision, ZoneSpec
from tests.agent.capability_services import Recorder, make_recorder


@dataclass
class Pair:
    transfers: FileTransfers
    recorder: Recorder
    home: Path


@asynccontextmanager
async def _connected(tmp_path: Path) -> AsyncIterator[Pair]:
    home = tmp_path / "home" / "ana"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "printer.conf").write_text("model: HP 4200\n")
    (home / "Projects").mkdir()
    limits = CapabilityLimits(
        platform="linux", direction="both", on_zone_access="require_consent",
        zones=(ZoneSpec(name="documents", patterns=(f"{tmp_path}/home/*/Documents/**",)),),
    )  # fmt: skip
    recorder = make_recorder(
        tmp_path, Ed25519PrivateKey.generate(), X25519PrivateKey.generate(),
        capabilities=[Capability.FILES], limits={Capability.FILES: limits},
    )  # fmt: skip
    handler = FileHandler(recorder.services())
    ids = iter(range(1, 10_000))
    transfers: FileTransfers

    async def to_device(message: AppMessage) -> None:
        await handler.handle(message)

    async def to_technician() -> None:
        while True:
            transfers.receive(await recorder.sent.get())

    transfers = FileTransfers(send=to_device, new_id=lambda: next(ids))
    pump = asyncio.create_task(to_technician())
    try:
        yield Pair(transfers, recorder, home)
    finally:
        await handler.close()
        pump.cancel()


async def test_a_zone_needs_a_reason_then_the_persons_yes(tmp_path: Path) -> None:
    here = tmp_path / "technician"
    here.mkdir()
    async with _connected(tmp_path) as pair:
        pair.recorder.answers = [ConsentDecision.REFUSED, ConsentDecision.GRANTED]
        remote = str(pair.home / "Documents" / "printer.conf")
        codes = []
        for reason in ("", "the printer settings", "the printer settings"):
            try:
                got = await pair.transfers.download(remote, str(here), reason=reason)
            except ToolError as exc:
                codes.append(exc.code)

    assert codes == ["files.reason_required", "files.zone_refused"]
    assert (here / "printer.conf").read_text() == "model: HP 4200\n"
    assert got.sha256 == hashlib.sha256(b"model: HP 4200\n").hexdigest()
    assert len(pair.recorder.questions) == 2
    assert os.listdir(here) == ["printer.conf"]


async def test_both_directions_and_a_resumed_download(tmp_path: Path) -> None:
    here = tmp_path / "technician"
    here.mkdir()
    data = os.urandom(3 * 256 * 1024 + 99)
    (here / "tool.bin").write_bytes(data)
    async with _connected(tmp_path) as pair:
        remote = str(pair.home / "Projects" / "tool.bin")
        put = await pair.transfers.upload(str(here / "tool.bin"), remote)
        # A download that stopped after its first chunk, as a dropped connection leaves it.
        (here / f"copy.bin{PART_SUFFIX}").write_bytes(data[: 256 * 1024])
        got = await pair.transfers.download(remote, str(here / "copy.bin"))
        listing = await pair.transfers.list_directory(str(pair.home / "Projects"))

    assert (pair.home / "Projects" / "tool.bin").read_bytes() == data
    assert (here / "copy.bin").read_bytes() == data
    assert put.sha256 == got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.resumed_from == 256 * 1024
    assert [entry.name for entry in listing.entries] == ["tool.bin"]


async def test_an_existing_file_needs_replace(tmp_path: Path) -> None:
    here = tmp_path / "technician"
    here.mkdir()
    (here / "new.conf").write_text("model: HP 4250\n")
    async with _connected(tmp_path) as pair:
        target = pair.home / "Projects" / "printer.conf"
        target.write_text("old\n")
        with pytest.raises(ToolError) as exists:
            await pair.transfers.upload(str(here / "new.conf"), str(target))
        await pair.transfers.upload(str(here / "new.conf"), str(target), overwrite=True)

    assert exists.value.code == "files.exists"
    assert target.read_text() == "model: HP 4250\n"
