"""Personal-data zones: default patterns per platform, normalisation and exceptions."""

from __future__ import annotations

import pytest
from policy_factories import make_policy

from auxilio.policy import match_zone

CASES = [
    ("windows", r"C:\Users\ana\Documents\cv.pdf", "documents"),
    ("windows", r"c:\users\ANA\documents\cv.pdf", "documents"),
    ("windows", r"C:\Users\ana\Public\..\Documents\cv.pdf", "documents"),
    ("windows", r"C:\Users\ana\Documents", "documents"),
    ("windows", r"D:\Users\ana\Desktop\notes.txt", "desktop"),
    (
        "windows",
        r"C:\Users\ana\AppData\Local\Google\Chrome\User Data\Default\Cookies",
        "browser_profiles",
    ),
    ("windows", r"C:\Users\ana\OneDrive - ACME\plan.xlsx", "cloud_sync"),
    ("windows", r"C:\Windows\System32\drivers\etc\hosts", None),
    ("windows", r"C:\Users\ana\AppData\Local\Temp\setup.log", None),
    ("macos", "/Users/bob/Library/Mail/V10/INBOX.mbox", "mail"),
    ("macos", "/users/bob/pictures/cat.jpg", "pictures"),
    ("macos", "/Users/bob/Library/Keychains/login.keychain-db", "credentials"),
    ("macos", "/Applications/Safari.app", None),
    ("linux", "/home/eva/.ssh/id_ed25519", "credentials"),
    ("linux", "/home/eva/Downloads/x.iso", "downloads"),
    ("linux", "/home/eva/downloads/x.iso", None),  # Linux is case-sensitive
    ("linux", "/home/eva/tmp/../Documents/a.odt", "documents"),
    ("linux", "//home/eva/Documents/a.odt", "documents"),
    ("linux", "/home/eva/.mozilla/firefox/abc.default/places.sqlite", "browser_profiles"),
    ("linux", "/var/log/syslog", None),
    ("linux", "/home/eva/DocumentsBackup/a", None),
]


@pytest.mark.parametrize(("platform", "path", "zone"), CASES)
def test_it_matches_default_zones(platform: str, path: str, zone: str | None) -> None:
    found = match_zone(make_policy(), platform, path)
    assert (found.name if found else None) == zone


def test_policy_zones_win_over_defaults_and_exceptions_open_a_hole() -> None:
    policy = make_policy(
        personal_data_zones={
            "zones": [{"name": "payroll", "linux": ["/home/*/Documents/payroll/**"]}],
            "exceptions": {"linux": ["/home/*/Documents/it/**"]},
        }
    )
    found = match_zone(policy, "linux", "/home/eva/Documents/payroll/2025.ods")
    assert found is not None
    assert (found.name, found.pattern) == ("payroll", "/home/*/Documents/payroll/**")
    assert match_zone(policy, "linux", "/home/eva/Documents/it/fix.sh") is None


def test_defaults_can_be_switched_off() -> None:
    policy = make_policy(personal_data_zones={"include_defaults": False})
    assert match_zone(policy, "linux", "/home/eva/Documents/a") is None


def test_a_relative_path_cannot_be_judged() -> None:
    with pytest.raises(ValueError, match="not an absolute"):
        match_zone(make_policy(), "linux", "Documents/a")
