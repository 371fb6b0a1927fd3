"""The device's zone check against every way to dress up a path (real directories and links)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auxilio.agent.capabilities.zones_local import (
    LINKED_FILE,
    PathRefused,
    ZoneChecker,
    bind_mounts,
)
from auxilio.protocol.types import CapabilityLimits, ZoneSpec


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A person's home with Documents (taxes inside) and a public folder beside it."""
    ana = tmp_path / "accounts" / "ana"
    (ana / "Documents" / "Public").mkdir(parents=True)
    (ana / "Documents" / "taxes.txt").write_text("income 2025")
    (ana / "Projects").mkdir()
    (tmp_path / "outside").mkdir()
    return ana


def checker(
    *homes: Path,
    exceptions: tuple[str, ...] = (),
    zones: tuple[ZoneSpec, ...] | None = None,
    mounts: list[tuple[str, str]] | None = None,
) -> ZoneChecker:
    """Default Linux zones (``/home/*/...``) with the given homes as the device's accounts."""
    limits = CapabilityLimits(
        platform="linux", zones=zones, zone_exceptions=exceptions, on_zone_access="require_consent"
    )
    return ZoneChecker(limits, homes=[str(h) for h in homes], mounts=mounts or [])


@pytest.mark.parametrize(
    "path",
    [
        "/home/ana/Documents/taxes.txt",
        "/home/ana/Public/../Documents/taxes.txt",
        "/home/ana/./Documents/./taxes.txt",
        "//home//ana///Documents/taxes.txt",
        "/../../home/ana/Documents/taxes.txt",
        "/home/ana/Documents/",
        "/home/ana/Documents",
        "/home/bob/Projects/../../ana/Documents/x",
    ],
)
def test_every_traversal_form_lands_in_the_zone(path: str) -> None:
    found = checker().resolve(path)
    assert found.zone == "documents"
    assert found.given.startswith("/home/ana/Documents")


@pytest.mark.parametrize(
    "path", ["/HOME/ana/documents/taxes.txt", "/home/ana/DOCUMENTS", "/Home/Ana/DoCuMeNtS/x"]
)
def test_zones_match_case_insensitively_on_linux_too(path: str) -> None:
    assert checker().resolve(path).zone == "documents"


@pytest.mark.parametrize("path", ["Documents/taxes.txt", "./taxes.txt", "..", "~nosuchuser9/x"])
def test_a_relative_path_is_refused_not_judged(path: str) -> None:
    with pytest.raises(PathRefused) as refused:
        checker().resolve(path)
    assert refused.value.code == "files.not_absolute"


def test_a_nul_character_is_refused() -> None:
    with pytest.raises(PathRefused) as refused:
        checker().resolve("/home/ana/Documents\x00.txt")
    assert refused.value.code == "files.bad_path"


def test_tilde_is_the_persons_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(home))
    found = checker(home).resolve("~/Documents/taxes.txt")
    assert (found.path, found.zone) == (str(home / "Documents" / "taxes.txt"), "documents")


def test_tilde_user_is_that_accounts_home() -> None:
    root_home = os.path.expanduser("~root")
    found = checker(Path(root_home)).resolve("~root/.ssh/id_ed25519")
    assert found.given == f"{root_home}/.ssh/id_ed25519"
    assert found.zone == "credentials"


def test_a_home_outside_slash_home_counts(tmp_path: Path) -> None:
    service_home = tmp_path / "var" / "lib" / "ana"
    found = checker(service_home).resolve(f"{service_home}/Documents/cv.pdf")
    assert found.zone == "documents"
    assert checker(service_home).resolve(f"{service_home}/Projects/cv.pdf").zone is None


def test_the_devices_own_accounts_are_mapped_by_default() -> None:
    limits = CapabilityLimits(platform="linux", on_zone_access="deny")
    zones = ZoneChecker(limits, mounts=[])
    assert zones.resolve(f"{Path.home()}/Documents/x").zone == "documents"
    assert zones.resolve("/root/Pictures/holiday.jpg").zone == "pictures"
    assert zones.resolve("/etc/passwd").zone is None
    assert zones.on_access == "deny"


def test_a_symlink_into_a_zone_is_in_the_zone(home: Path, tmp_path: Path) -> None:
    link = tmp_path / "outside" / "innocent"
    link.symlink_to(home / "Documents")
    found = checker(home).resolve(f"{link}/taxes.txt")
    assert found.zone == "documents"
    assert found.why == "real"
    assert found.path == str(home / "Documents" / "taxes.txt")


def test_a_symlink_out_of_a_zone_is_still_in_it_by_its_given_name(
    home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "outside" / "notes.txt"
    target.write_text("not personal")
    (home / "Documents" / "notes").symlink_to(target)
    found = checker(home).resolve(f"{home}/Documents/notes")
    assert (found.zone, found.why, found.path) == ("documents", "given", str(target))


def test_dot_dot_after_a_symlink_is_judged_by_the_real_path(home: Path, tmp_path: Path) -> None:
    # normpath says <outside>/taxes.txt; the kernel follows deep/ first, into Documents.
    deep = tmp_path / "outside" / "deep"
    deep.symlink_to(home / "Documents" / "Public")
    (tmp_path / "outside" / "taxes.txt").write_text("decoy")
    found = checker(home).resolve(f"{deep}/../taxes.txt")
    assert found.zone == "documents"
    assert found.path == str(home / "Documents" / "taxes.txt")


def test_a_hard_link_to_a_file_is_a_linked_file(home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "outside" / "copy.txt"
    os.link(home / "Documents" / "taxes.txt", copy)
    found = checker(home).resolve(str(copy))
    assert (found.zone, found.why) == (LINKED_FILE, "linked_file")
    lone = tmp_path / "outside" / "lone.txt"
    lone.write_text("one name")
    assert checker(home).resolve(str(lone)).zone is None


def test_a_zone_root_reached_by_a_second_name_is_the_zone(home: Path, tmp_path: Path) -> None:
    # A bind mount gives a zone root a second path with the same (st_dev, st_ino). Here the
    # device knows the home only by a name that leads there, not by the directory's own path.
    alias = tmp_path / "alias-home"
    alias.symlink_to(home)
    zones = checker(alias)
    found = zones.resolve(f"{home}/Documents/taxes.txt")
    assert (found.zone, found.why) == ("documents", "zone_root")
    assert zones.resolve(f"{home}/Projects/x").zone is None


def test_a_bind_mounted_subfolder_of_a_zone_is_the_zone(home: Path, tmp_path: Path) -> None:
    mount_point = tmp_path / "mnt" / "t"
    mount_point.mkdir(parents=True)
    zones = checker(home, mounts=[(str(mount_point), f"{home}/Documents/Public")])
    found = zones.resolve(f"{mount_point}/report.pdf")
    assert (found.zone, found.why) == ("documents", "mount")


def test_bind_mounts_are_read_from_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 254:0 /home/ana/Documents /mnt/my\\040docs rw - ext4 /dev/vda rw\n"
        "41 27 0:50 /sub /srv/other rw - tmpfs tmpfs rw\n"
    )
    assert bind_mounts(info) == [("/mnt/my docs", "/home/ana/Documents")]
    assert bind_mounts(tmp_path / "absent") == []


def test_exceptions_win_over_zones(home: Path, tmp_path: Path) -> None:
    zones = checker(home, exceptions=("/home/*/Documents/Public/**",))
    assert zones.resolve(f"{home}/Documents/Public/flyer.pdf").zone is None
    assert zones.resolve("/home/ana/Documents/Public/flyer.pdf").zone is None
    assert zones.resolve(f"{home}/Documents/taxes.txt").zone == "documents"


def test_on_linux_an_exception_is_exact_and_a_zone_is_not(home: Path) -> None:
    # "public" is another folder than "Public" on a case-sensitive disk: the exception does
    # not let it out, while the zone still takes in every case variant of Documents.
    zones = checker(home, exceptions=("/home/*/Documents/Public/**",))
    assert zones.resolve("/home/ana/documents/public/flyer.pdf").zone == "documents"
    assert zones.resolve("/home/ana/Documents/PUBLIC/flyer.pdf").zone == "documents"


@pytest.mark.parametrize("platform", ["windows", "macos"])
def test_where_the_disk_ignores_case_an_exception_does_too(platform: str) -> None:
    head = "*:/Users/*" if platform == "windows" else "/Users/*"
    limits = CapabilityLimits(
        platform=platform,  # type: ignore[arg-type]
        zones=(ZoneSpec(name="documents", patterns=(f"{head}/Documents/**",)),),
        zone_exceptions=(f"{head}/Documents/Public/**",),
    )
    zones = ZoneChecker(limits, homes=[], mounts=[])
    root = "C:/Users/ana" if platform == "windows" else "/Users/ana"
    assert zones.zone_of(f"{root}/documents/public/flyer.pdf") is None
    assert zones.zone_of(f"{root}/documents/taxes.txt") == "documents"


@pytest.mark.parametrize("name", ["report\n.txt", "2025\nreturns/taxes.txt", "\n", "a\r\nb"])
def test_a_name_with_a_newline_is_judged_like_any_other(home: Path, name: str) -> None:
    zones = checker(home, exceptions=("/home/*/Documents/Public/**",))
    assert zones.resolve(f"/home/ana/Documents/{name}").zone == "documents"
    assert zones.resolve(f"/home/ana/Documents/Public{name}").zone == "documents"
    assert zones.resolve(f"/home/ana/Projects/{name}").zone is None


def test_a_grant_without_zones_gets_the_defaults_denied() -> None:
    zones = ZoneChecker(CapabilityLimits(platform="linux"), homes=[], mounts=[])
    assert zones.on_access == "deny"
    assert "documents" in zones.zone_names()
    assert zones.zone_of("/home/ana/.gnupg/pubring.kbx") == "credentials"


def test_an_empty_zone_list_means_no_zones() -> None:
    zones = checker(zones=())
    assert zones.resolve("/home/ana/Documents/taxes.txt").zone is None


def test_policy_zones_and_their_names(tmp_path: Path) -> None:
    payroll = ZoneSpec(name="payroll", patterns=("/srv/payroll/**", "/home/*/payroll.xlsx"))
    zones = checker(tmp_path / "ana", zones=(payroll,))
    assert zones.zone_of("/SRV/Payroll/2025/march.csv") == "payroll"
    assert zones.zone_of(f"{tmp_path}/ana/payroll.xlsx") == "payroll"
    assert zones.zone_of("/srv/payroll-public/x") is None
    assert zones.zone_of("/home/ana/Documents/x") is None


@pytest.mark.parametrize(
    ("spelling", "normal"),
    [
        (r"C:\Users\ana\Documents::$INDEX_ALLOCATION\x.txt", "C:/Users/ana/Documents/x.txt"),
        (r"C:\Users\ana\Documents\taxes.txt:hidden", "C:/Users/ana/Documents/taxes.txt"),
        (r"\\server\C$", "C:/"),
        (r"C:\Users\ana\...\x", "C:/Users/ana/.../x"),  # three dots: a name, not a parent
        (r"\\?\Volume{1b3b1146-4076-11e1-84aa-806e6f6e6963}\Users", None),
        (r"\\.\PhysicalDrive0", None),
    ],
)
def test_windows_streams_shares_and_device_paths(spelling: str, normal: str | None) -> None:
    limits = CapabilityLimits(platform="windows")
    zones = ZoneChecker(limits, homes=[], mounts=[])
    if normal is None:
        with pytest.raises(PathRefused):
            zones.normalise(spelling)
    else:
        assert zones.normalise(spelling) == normal
