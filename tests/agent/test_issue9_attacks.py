"""Issue 9 reviewed as an attacker, on the device: a technician who sends files.*, runbook.run and
diagnostics.request crafted to get past the zones, the signatures or the person's attention, and
a proxy that changed what the server was told about the device.

Each hole found is a test marked ``xfail(strict=True)`` whose reason names the finding; each
defence that held is a plain test. The files tests run the real handler on real folders.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console

from auxilio.agent.capabilities import zones_local
from auxilio.agent.capabilities.base import Question
from auxilio.agent.capabilities.diagnostics import DiagnosticsHandler
from auxilio.agent.capabilities.files import FileHandler, partial_path
from auxilio.agent.capabilities.zones_local import ZoneChecker
from auxilio.agent.feed import Feed
from auxilio.agent.state import ActivityLog
from auxilio.crypto.runbooks import RunbookParameter, sign_runbook
from auxilio.policy.schema import Platform
from auxilio.policy.zones import DEFAULT_ZONES
from auxilio.protocol.app import (
    DiagnosticsRequest,
    FileChunk,
    FilesDownload,
    FilesList,
    FilesListing,
    FilesReady,
    FilesUpload,
    RunbookError,
    RunbookResult,
    RunbookRun,
)
from auxilio.protocol.types import Capability, CapabilityLimits, ConsentDecision, ZoneSpec

from .capability_services import make_recorder
from .test_files import REASON, Device, FakeSession, chunks_of, sha
from .test_runbooks_agent import Kit, make_runbook, pin_for

TAXES = b"income 2025: 41,200"


# -- a device with the policy's own zones ---------------------------------------------------------


def default_zones(platform: Platform) -> tuple[ZoneSpec, ...]:
    """The policy's default zones of ``platform``, as the server signs them into a grant."""
    return tuple(
        ZoneSpec(name=name, patterns=per[platform]) for name, per in DEFAULT_ZONES.items()
        if per[platform]
    )  # fmt: skip


@pytest.fixture
def device(tmp_path: Path) -> Device:
    """Ana's home with Documents (a zone under a pattern of this temporary root), Projects
    (not a zone), and the school's answer to a zone: deny."""
    home = tmp_path / "home" / "ana"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "taxes.txt").write_bytes(TAXES)
    (home / "Projects").mkdir()
    (home / "Projects" / "notes.txt").write_text("printer: HP 4200")
    limits = CapabilityLimits(
        platform="linux",
        direction="both",
        zones=(ZoneSpec(name="documents", patterns=(f"{tmp_path}/home/*/Documents/**",)),),
        on_zone_access="deny",
    )
    session = FakeSession(limits=limits, log=ActivityLog(tmp_path / "activity.jsonl"))
    return Device(tmp_path, home, session, FileHandler(session.services()))


@pytest.fixture
def ana_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home that the device counts as a local account's (the default zones' ``/home/*``
    head then also matches under it), with a key ring, mail and a browser profile."""
    home = tmp_path / "home" / "ana"
    for folder in (".gnupg", ".thunderbird/abc.default", ".mozilla/firefox/abc.default"):
        (home / folder).mkdir(parents=True)
    (home / ".gnupg" / "secring.gpg").write_bytes(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    (home / ".thunderbird/abc.default" / "Inbox").write_bytes(b"From: bank")
    (home / ".mozilla/firefox/abc.default" / "logins.json").write_bytes(b'{"logins": []}')
    monkeypatch.setattr(zones_local, "local_homes", lambda: [str(home)])
    yield home


def default_zones_device(tmp_path: Path, platform: Platform) -> Device:
    """A files handler whose grant names ``platform`` and its default zones, under deny."""
    limits = CapabilityLimits(
        platform=platform.value,
        direction="both",
        zones=default_zones(platform),
        on_zone_access="deny",
    )
    session = FakeSession(limits=limits, log=ActivityLog(tmp_path / f"{platform}.jsonl"))
    return Device(tmp_path, tmp_path / "home" / "ana", session, FileHandler(session.services()))


async def upload(device: Device, path: str, data: bytes, *, transfer_id: int = 9) -> None:
    await device.send(
        FilesUpload(transfer_id=transfer_id, path=path, size=len(data), sha256=sha(data),
                    reason=REASON)
    )  # fmt: skip
    if any(isinstance(m, FilesReady) for m in device.session.sent):
        await device.send(*chunks_of(transfer_id, data))


# -- the zone check: spellings a technician can send ---------------------------------------------


async def test_an_upload_named_with_a_newline_is_still_inside_a_denied_zone(
    device: Device,
) -> None:
    target = device.home / "Documents" / "report\n.txt"
    await upload(device, str(target), b"planted by the technician")
    assert device.session.errors() == ["files.zone_denied"]
    assert sorted(os.listdir(device.home / "Documents")) == ["taxes.txt"]


async def test_a_file_or_folder_with_a_newline_in_a_denied_zone_is_not_readable(
    device: Device,
) -> None:
    odd = device.home / "Documents" / "2025\nreturns"
    odd.mkdir()
    (odd / "taxes.txt").write_bytes(TAXES)
    assert await device.download(odd / "taxes.txt") == b""
    await device.send(FilesList(request_id=1, path=str(odd)))
    assert device.session.errors() == ["files.zone_denied", "files.zone_denied"]
    assert [m for m in device.session.sent if isinstance(m, FilesListing)] == []


def test_a_zone_exception_does_not_cover_a_look_alike_name_ending_in_a_newline(
    tmp_path: Path,
) -> None:
    limits = CapabilityLimits(
        platform="linux",
        zones=(ZoneSpec(name="documents", patterns=("/home/*/Documents/**",)),),
        zone_exceptions=("/home/*/Documents/Public/**",),
        on_zone_access="deny",
    )
    checker = ZoneChecker(limits, homes=[], mounts=[])
    assert checker.resolve("/home/ana/Documents/Public/flyer.pdf").zone is None  # the exception
    assert checker.resolve("/home/ana/Documents/Public\n").zone == "documents"


@pytest.fixture
def in_documents(device: Device) -> Iterator[int]:
    """The pid of a process whose working folder is the zone (its /proc/<pid>/cwd)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], cwd=device.home / "Documents"
    )
    yield child.pid
    child.kill()
    child.wait()


@pytest.mark.parametrize(
    "spelling",
    [
        "/proc/self/root{home}/Documents/taxes.txt",
        "/proc/{pid}/root{home}/Documents/taxes.txt",
        "/proc/self/cwd/Documents/taxes.txt",
        "/proc/{child}/cwd/taxes.txt",
        "{home}/Projects/../../ana/Documents/./taxes.txt",
        "{home}/documents/TAXES.txt",
    ],
)
async def test_proc_magic_links_and_other_spellings_of_a_zone_are_denied(
    device: Device, spelling: str, in_documents: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DEFENCE HOLDS: realpath follows /proc's magic links to the real name, which is judged.
    (device.home / "documents").symlink_to(device.home / "Documents")
    monkeypatch.chdir(device.home)
    path = spelling.format(home=device.home, pid=os.getpid(), child=in_documents)
    assert await device.download(path) == b""
    assert device.session.errors() == ["files.zone_denied"]


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("{home}/Documents/taxes.txt\x00.png", "files.bad_path"),
        ("{home}\\Documents\\taxes.txt", "files.not_found"),  # one odd name on Linux
        ("{home}/D\u043ecuments/taxes.txt", "files.not_found"),  # Cyrillic o: another folder
        ("{home}/Docu\u200bments/taxes.txt", "files.not_found"),  # zero-width space
        ("~nobody-here/Documents/taxes.txt", "files.not_absolute"),
        ("Documents/taxes.txt", "files.not_absolute"),
    ],
)
async def test_look_alike_and_malformed_paths_never_reach_the_zone(
    device: Device, spelling: str, code: str
) -> None:
    # DEFENCE HOLDS: on Linux these are other names (or no name at all), not the zone's file.
    assert await device.download(spelling.format(home=device.home)) == b""
    assert device.session.errors() == [code]


async def test_a_look_alike_folder_the_technician_creates_stays_a_different_folder(
    device: Device,
) -> None:
    # DEFENCE HOLDS: an upload into "Dоcuments" (Cyrillic o) makes a new folder's file, never
    # one of the real Documents, and a later read of the real one is still denied.
    fake = device.home / "D\u043ecuments"
    fake.mkdir()
    await upload(device, str(fake / "taxes.txt"), b"not the real one")
    assert (device.home / "Documents" / "taxes.txt").read_bytes() == TAXES
    assert await device.download(device.home / "Documents" / "taxes.txt") == b""
    assert device.session.errors() == ["files.zone_denied"]


async def test_very_long_paths_get_a_stable_code_not_an_internal_error(device: Device) -> None:
    long_path = str(device.home / "Projects") + "/" + "a/" * 2030
    long_name = str(device.home / "Projects" / ("n" * 300))
    await device.send(FilesList(request_id=1, path=long_path[:4096]))
    await upload(device, long_name, b"x")
    await device.download(long_name)
    assert "files.failed" not in device.session.errors()
    assert not any(kind == "alert" for kind, _ in device.session.feed.lines)


async def test_a_zone_exception_does_not_let_out_a_folder_that_differs_only_by_case(
    device: Device,
) -> None:
    device.limits(zone_exceptions=(f"{device.root}/home/*/Documents/Public/**",))
    for name in ("Public", "public"):
        (device.home / "Documents" / name).mkdir()
    (device.home / "Documents" / "Public" / "flyer.txt").write_text("school fair")
    (device.home / "Documents" / "public" / "medical.txt").write_text("diagnosis")
    # (download() returns every chunk sent so far in the test)
    assert await device.download(device.home / "Documents" / "Public" / "flyer.txt") == (
        b"school fair"
    )
    assert await device.download(device.home / "Documents" / "public" / "medical.txt") == (
        b"school fair"
    )
    assert device.session.errors() == ["files.zone_denied"]


async def test_a_zone_opened_to_read_a_file_is_not_opened_to_overwrite_it(
    device: Device,
) -> None:
    device.limits(on_zone_access="require_consent")
    device.session.answers = [ConsentDecision.GRANTED, ConsentDecision.REFUSED]
    taxes = device.home / "Documents" / "taxes.txt"
    assert await device.download(taxes) == TAXES
    data = b"income 2025: 0"
    await device.send(
        FilesUpload(transfer_id=9, path=str(taxes), size=len(data), sha256=sha(data),
                    overwrite=True, reason=REASON)
    )  # fmt: skip
    if any(isinstance(m, FilesReady) for m in device.session.sent):
        await device.send(*chunks_of(9, data))
    assert len(device.session.asked) == 2
    assert taxes.read_bytes() == TAXES


async def test_a_name_that_is_not_utf8_does_not_break_the_listing(device: Device) -> None:
    projects = os.fsencode(device.home / "Projects")
    os.close(os.open(projects + b"/\xff-old.txt", os.O_CREAT | os.O_WRONLY, 0o600))
    await device.send(FilesList(request_id=1, path=str(device.home / "Projects")))
    [listing] = [m for m in device.session.sent if isinstance(m, FilesListing)]
    assert "notes.txt" in {entry.name for entry in listing.entries}


# -- the platform the grant names ----------------------------------------------------------------


async def test_the_linux_grant_protects_keys_mail_and_browser_profiles(
    tmp_path: Path, ana_home: Path
) -> None:
    # The control case for the next test: the zones of this device's own platform.
    device = default_zones_device(tmp_path, Platform.LINUX)
    for secret in (".gnupg/secring.gpg", ".thunderbird/abc.default/Inbox",
                   ".mozilla/firefox/abc.default/logins.json"):  # fmt: skip
        assert await device.download(ana_home / secret) == b""
    assert device.session.errors() == ["files.zone_denied"] * 3


async def test_a_grant_for_another_platform_does_not_lift_this_devices_zones(
    tmp_path: Path, ana_home: Path
) -> None:
    device = default_zones_device(tmp_path, Platform.MACOS)
    assert await device.download(ana_home / ".gnupg" / "secring.gpg") == b""
    assert await device.download(ana_home / ".thunderbird/abc.default/Inbox") == b""
    assert device.session.errors()[:2] in (
        ["files.zone_denied"] * 2,
        ["files.platform_mismatch"] * 2,
    )


@pytest.mark.parametrize(
    "profile",
    [
        "snap/firefox/common/.mozilla/firefox/abc.default/logins.json",
        ".var/app/org.mozilla.firefox/.mozilla/firefox/abc.default/logins.json",
        "snap/chromium/common/chromium/Default/Login Data",
        ".var/app/com.google.Chrome/config/google-chrome/Default/Cookies",
        "snap/thunderbird/common/.thunderbird/abc.default/Inbox",
        ".local/share/keyrings/login.keyring",
        ".config/BraveSoftware/Brave-Browser/Default/Login Data",
        ".config/microsoft-edge/Default/Login Data",
    ],
)
def test_the_linux_defaults_cover_packaged_browsers_mail_and_keyrings(profile: str) -> None:
    limits = CapabilityLimits(platform="linux", zones=default_zones(Platform.LINUX))
    checker = ZoneChecker(limits, homes=["/home/ana"], mounts=[])
    assert checker.resolve(f"/home/ana/{profile}").zone is not None


WINDOWS_SPELLINGS = [
    r"\\?\C:\Users\ana\Documents\taxes.txt",
    r"\\.\C:\Users\ana\Documents\taxes.txt",
    r"\\?\UNC\localhost\C$\Users\ana\Documents\taxes.txt",
    r"\\localhost\C$\Users\ana\Documents\taxes.txt",
    r"\\127.0.0.1\c$\Users\ana\Documents\taxes.txt",
    r"C:\Users\ana\Documents.\taxes.txt",
    r"C:\Users\ana\Documents \taxes.txt",
]


def windows_checker() -> ZoneChecker:
    limits = CapabilityLimits(platform="windows", zones=default_zones(Platform.WINDOWS))
    return ZoneChecker(limits, platform=Platform.WINDOWS, homes=[], mounts=[])


def test_the_windows_string_check_knows_the_plain_spelling() -> None:
    checker = windows_checker()
    path = r"c:\users\ANA\documents\taxes.txt"
    assert checker.zone_of(checker.normalise(path)) == "documents"


@pytest.mark.parametrize("spelling", WINDOWS_SPELLINGS)
def test_the_windows_string_check_sees_through_device_paths_and_shares(spelling: str) -> None:
    checker = windows_checker()
    assert checker.zone_of(checker.normalise(spelling)) == "documents"


# -- uploads: what else is on the disk -------------------------------------------------------------


async def test_an_upload_whose_folder_becomes_a_link_into_a_zone_is_not_placed_there(
    device: Device,
) -> None:
    drop = device.home / "Projects" / "drop"
    drop.mkdir()
    data = b"a driver the technician sends"
    await device.send(
        FilesUpload(transfer_id=9, path=str(drop / "driver.bin"), size=len(data),
                    sha256=sha(data), reason=REASON)
    )  # fmt: skip
    assert device.session.one(FilesReady).offset == 0
    # Someone on the device (a script, the terminal) swaps the folder mid-transfer.
    os.rename(drop, device.home / "Projects" / "drop.old")
    drop.symlink_to(device.home / "Documents")
    await device.send(*chunks_of(9, data))
    # DEFENCE HOLDS: the partial moved away with the folder, so the last step (a link or a
    # rename by path, through the new link) finds nothing to put in the zone.
    assert sorted(os.listdir(device.home / "Documents")) == ["taxes.txt"]
    assert device.session.errors() == ["files.io_error"]


async def test_a_partial_hard_linked_into_a_zone_never_touches_the_zones_file(
    device: Device,
) -> None:
    target = device.home / "Projects" / "new.txt"
    data = b"tiny"
    os.link(device.home / "Documents" / "taxes.txt", partial_path(str(target), sha(data)))
    await upload(device, str(target), data)
    assert (device.home / "Documents" / "taxes.txt").read_bytes() == TAXES
    assert not target.exists()


async def test_a_folder_named_like_the_partial_is_a_stable_error_and_nothing_is_written(
    device: Device,
) -> None:
    # DEFENCE HOLDS: the partial cannot be opened; the folder is left as it was.
    target = device.home / "Projects" / "new.txt"
    data = b"payload"
    os.mkdir(partial_path(str(target), sha(data)))
    await upload(device, str(target), data)
    assert device.session.errors() == ["files.io_error"]
    assert not target.exists()


async def test_a_partial_that_is_a_symlink_into_a_zone_is_not_followed(device: Device) -> None:
    # DEFENCE HOLDS: O_NOFOLLOW on the partial: the zone's file is neither read nor written.
    target = device.home / "Projects" / "new.txt"
    data = b"payload"
    os.symlink(device.home / "Documents" / "taxes.txt", partial_path(str(target), sha(data)))
    await upload(device, str(target), data)
    assert device.session.errors() == ["files.io_error"]
    assert (device.home / "Documents" / "taxes.txt").read_bytes() == TAXES


async def test_chunks_out_of_line_are_refused_and_never_reach_the_target(device: Device) -> None:
    # DEFENCE HOLDS: a chunk past the offset, then more bytes than announced.
    target = device.home / "Projects" / "new.txt"
    data = b"0123456789"
    await device.send(
        FilesUpload(transfer_id=9, path=str(target), size=len(data), sha256=sha(data))
    )
    await device.send(FileChunk(transfer_id=9, offset=4, data=data[4:]))
    await device.send(
        FilesUpload(transfer_id=10, path=str(target), size=len(data), sha256=sha(data)),
        FileChunk(transfer_id=10, offset=0, data=data + b"extra bytes"),
    )
    assert device.session.errors() == ["files.bad_offset", "files.too_large"]
    assert not target.exists()


async def test_an_upload_that_lies_about_its_hash_is_never_put_in_place(device: Device) -> None:
    # DEFENCE HOLDS: the announced hash names another content: nothing replaces the file.
    target = device.home / "Projects" / "notes.txt"
    await device.send(
        FilesUpload(transfer_id=9, path=str(target), size=4, overwrite=True,
                    sha256=hashlib.sha256(b"good").hexdigest())
    )  # fmt: skip
    await device.send(FileChunk(transfer_id=9, offset=0, data=b"evil"))
    assert device.session.errors() == ["files.hash_mismatch"]
    assert target.read_text() == "printer: HP 4200"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
async def test_uploads_announced_and_never_sent_do_not_pile_up_descriptors(
    device: Device,
) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for number in range(300):
        await device.send(
            FilesUpload(transfer_id=number, path=str(device.home / "Projects" / f"f{number}"),
                        size=1, sha256=sha(b"x"))
        )  # fmt: skip
    held = len(os.listdir("/proc/self/fd")) - before
    await device.handler.close()
    assert held <= 32, f"{held} descriptors held by uploads that never sent a byte"


# -- what the person reads ----------------------------------------------------------------------

CURSOR_TRICK = "driver\x1b[1A\x1b[2K\rYou allowed nothing; this is routine\nPath: /tmp/harmless"


def printable(lines: tuple[str, ...]) -> bool:
    return all(ch.isprintable() for line in lines for ch in line)


async def test_a_zone_question_shows_only_printable_text(device: Device) -> None:
    device.limits(on_zone_access="require_consent")
    device.session.answers = [ConsentDecision.REFUSED]
    await device.send(
        FilesDownload(transfer_id=7, path=str(device.home / "Documents" / "taxes.txt"),
                      reason=CURSOR_TRICK)
    )  # fmt: skip
    [question] = device.session.asked
    assert printable((question.title, *question.lines))


async def test_the_feed_never_prints_a_technicians_escape_sequences(device: Device) -> None:
    # The person's real feed, on a terminal of its own: FakeFeed only records what the handler
    # passes, and the finding was what the feed then prints (Feed._line, for every handler).
    screen = io.StringIO()
    feed = Feed(Console(file=screen, width=200, color_system=None))
    device.session.feed = feed  # type: ignore[assignment] -- the real one in place of the fake
    device.handler = FileHandler(device.session.services())
    await upload(device, str(device.home / "Projects" / "x\x1b[1A\x1b[2K"), b"payload")
    printed = screen.getvalue().splitlines()
    assert any("x?[1A?[2K" in line for line in printed)  # the upload is told, made harmless
    assert all(line.isprintable() for line in printed)


@pytest.fixture
def make_kit(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: Any
) -> Callable[..., Kit]:
    def build(*pins: Any) -> Kit:
        return Kit(tmp_path, server_key, technician_key, pins)

    return build


async def test_a_runbook_question_shows_only_printable_text(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    signed = sign_runbook(server_key, make_runbook())
    kit = make_kit(pin_for(signed))
    kit.recorder.answers = [ConsentDecision.REFUSED]
    await kit.handler.handle(
        RunbookRun(run_id=5, runbook=signed, parameters={"target": "x"}, reason=CURSOR_TRICK)
    )
    await kit.handler.wait_idle()
    question = kit.recorder.questions[0]
    assert printable((question.title, *question.lines))


async def test_a_diagnostics_question_shows_only_printable_text(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: Any
) -> None:
    recorder = make_recorder(
        tmp_path, server_key, technician_key, capabilities=[Capability.DIAGNOSTICS]
    )
    recorder.answers = [ConsentDecision.REFUSED]
    handler = DiagnosticsHandler(recorder.services(), collect=lambda _: {"os": {"system": "x"}})
    await handler.handle(DiagnosticsRequest(request_id=1, reason=CURSOR_TRICK))
    await handler.wait_idle()
    question: Question = recorder.questions[0]
    assert printable((question.title, *question.lines))


async def test_every_journal_line_that_is_sent_was_shown_to_the_person(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: Any
) -> None:
    journal = [
        "gnome-shell[2211]: cannot open /home/ana/Documents/divorce-2025.pdf: Permission denied",
        "evolution[3110]: ana.lopez@example.org: login to imap.example.org failed",
    ]
    report = {"recent_errors": {"available": True, "lines": journal}}
    recorder = make_recorder(
        tmp_path, server_key, technician_key, capabilities=[Capability.DIAGNOSTICS]
    )
    recorder.answers = [ConsentDecision.GRANTED]
    handler = DiagnosticsHandler(recorder.services(), collect=lambda _: report)
    await handler.handle(DiagnosticsRequest(request_id=1))
    await handler.wait_idle()
    shown = "\n".join(recorder.questions[0].lines)
    assert all(line in shown for line in journal)


# -- runbooks: replays, smuggled options, environment ---------------------------------------------


async def test_a_replayed_runbook_run_asks_the_person_again(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    # DEFENCE HOLDS: one yes is one run; the same message again is a new question.
    signed = sign_runbook(server_key, make_runbook())
    kit = make_kit(pin_for(signed))
    kit.recorder.answers = [ConsentDecision.GRANTED, ConsentDecision.REFUSED]
    first = await kit.run(signed, target="x")
    second = await kit.run(signed, target="x")
    assert isinstance(first, RunbookResult) and first.exit_code == 0
    assert isinstance(second, RunbookError) and second.code == "runbook.refused"
    assert len(kit.recorder.questions) == 2


async def test_an_option_as_a_value_is_one_argument_of_the_script(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    # DEFENCE HOLDS: "-rf", "--help" and "-c ..." reach the script as $1 and $2; the
    # interpreter never parses them (the script's path comes first).
    sentinel = tmp_path / "sentinel"
    script = 'printf "[%s]" "$@"\n'
    parameters = (
        RunbookParameter(name="first", type="string", pass_as="argument"),
        RunbookParameter(name="second", type="string", pass_as="argument"),
    )
    signed = sign_runbook(server_key, make_runbook(script=script, parameters=parameters))
    kit = make_kit(pin_for(signed, consent=False))
    answer = await kit.run(signed, first="-rf", second=f"-c touch {sentinel}")
    assert isinstance(answer, RunbookResult)
    assert answer.stdout == f"[-rf][-c touch {sentinel}]"
    assert not sentinel.exists()


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "AUXILIO_PARAM_TARGET", "target "])
async def test_a_parameter_cannot_name_an_environment_variable(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey, name: str
) -> None:
    # DEFENCE HOLDS: only declared names; each becomes AUXILIO_PARAM_<NAME>.
    signed = sign_runbook(server_key, make_runbook())
    kit = make_kit(pin_for(signed, consent=False))
    answer = await kit.run(signed, target="x", **{name: "/tmp/evil.so"})
    assert isinstance(answer, RunbookError)
    assert answer.code == "runbook.parameter_invalid"


async def test_two_runs_at_once_cannot_share_a_yes(
    make_kit: Callable[..., Kit], server_key: Ed25519PrivateKey
) -> None:
    # DEFENCE HOLDS: while the person is asked about one run, a second is busy, not queued
    # behind the same answer.
    signed = sign_runbook(server_key, make_runbook())
    kit = make_kit(pin_for(signed))
    kit.recorder.answer_gate = asyncio.Event()
    await kit.handler.handle(RunbookRun(run_id=1, runbook=signed, parameters={"target": "a"}))
    await kit.recorder.question_asked()
    await kit.handler.handle(RunbookRun(run_id=2, runbook=signed, parameters={"target": "b"}))
    busy = await kit.recorder.next_sent()
    assert isinstance(busy, RunbookError) and (busy.ref, busy.code) == (2, "runbook.busy")
    kit.recorder.answer_gate.set()
    await kit.handler.wait_idle()
    assert len(kit.recorder.questions) == 1
