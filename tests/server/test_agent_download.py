"""The join page's agent download: which build a browser is offered, and what is served for a
code (in process; the real download, run and consent are in tests/e2e/test_agent_binary.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from auxilio.agent.trailer import read_trailer
from auxilio.server.settings import load_settings
from auxilio.server.web.agent_download import (
    available_builds,
    build_for,
    detect_platform,
    offered_build,
)

UA = {
    "firefox-linux": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "chrome-linux": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "linux-arm": "Mozilla/5.0 (X11; Linux aarch64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36 Edg/131.0",
    "mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Safari/605.1.15",
    "android": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36",
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15",
    "chromebook": "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 Chrome/131.0",
}


@pytest.mark.parametrize(
    ("browser", "platform"),
    [
        ("firefox-linux", "linux-x86_64"),
        ("chrome-linux", "linux-x86_64"),
        ("linux-arm", "linux-aarch64"),
        ("windows", "windows-x86_64"),
        ("mac", "macos-x86_64"),
        ("android", "android"),
        ("iphone", "ios"),
        ("chromebook", "chromeos"),
    ],
)
def test_the_platform_comes_from_the_user_agent(browser: str, platform: str) -> None:
    assert detect_platform(UA[browser]) == platform


def test_an_unknown_user_agent_names_no_platform() -> None:
    assert detect_platform("") is None
    assert detect_platform("curl/8.5.0") is None


def test_builds_are_the_files_by_name_and_a_mac_gets_the_other_mac_build(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    builds = settings.agent_builds_path
    assert builds == tmp_path / "data" / "agent-builds"
    builds.mkdir(parents=True)
    (builds / "auxilio-agent-linux-x86_64").write_bytes(b"\x7fELF build")
    (builds / "auxilio-agent-macos-aarch64").write_bytes(b"macho")
    (builds / "auxilio-agent-linux-aarch64").write_bytes(b"")  # empty: not a build
    (builds / "LICENSES.txt").write_text("licences")
    assert [b.platform for b in available_builds(settings)] == ["linux-x86_64", "macos-aarch64"]
    assert build_for(settings, "linux-aarch64") is None
    assert build_for(settings, "../../etc/passwd") is None
    found = offered_build(settings, "macos-x86_64")  # a Mac browser always says Intel
    assert found is not None and found.platform == "macos-aarch64"
    assert offered_build(settings, "windows-x86_64") is None
    assert offered_build(settings, "android") is None
    assert offered_build(settings, None) is None
    other = load_settings(data_dir=tmp_path / "data", agent_builds_dir=tmp_path / "elsewhere")
    assert other.agent_builds_path == tmp_path / "elsewhere"
    assert available_builds(other) == []


@pytest.fixture
def settings(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    builds = tmp_path / "builds"
    builds.mkdir()
    (builds / "auxilio-agent-linux-x86_64").write_bytes(b"\x7fELF" + bytes(4096))
    return load_settings(data_dir=tmp_path / "data", database_url=database_url,
                         agent_builds_dir=builds)  # fmt: skip


async def test_the_join_page_offers_the_build_and_refuses_a_bad_code_without_a_binary(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/join/ACD-EFH-JKM", headers={"User-Agent": UA["firefox-linux"]})
    assert page.status_code == 200
    assert "Download the agent for Linux (x86_64), 1 MB" in page.text
    assert 'href="/join/ACD-EFH-JKM/agent/linux-x86_64"' in page.text
    assert "chmod +x auxilio-agent-linux-x86_64" in page.text
    spanish = await client.get("/join/ACD-EFH-JKM", headers={"User-Agent": UA["firefox-linux"],
                                                             "Accept-Language": "es"})
    assert "Descargar el agente para Linux (x86_64), 1 MB" in spanish.text
    windows = await client.get("/join/ACD-EFH-JKM", headers={"User-Agent": UA["windows"]})
    assert "This server has no agent for Windows (64-bit) yet." in windows.text
    assert 'data-testid="join-download-linux-x86_64"' in windows.text  # for another computer

    unknown = await client.get("/join/ACD-EFH-JKM/agent/linux-x86_64")
    assert unknown.status_code == 404
    assert 'data-code="join_code.invalid"' in unknown.text
    assert unknown.headers["content-type"].startswith("text/html")
    shape = await client.get("/join/not-a-code/agent/linux-x86_64")
    assert shape.status_code == 404 and 'data-code="join_code.invalid"' in shape.text
    platform = await client.get("/join/ACD-EFH-JKM/agent/plan9-mips")
    assert platform.status_code == 404 and 'data-code="agent.platform_unknown"' in platform.text


async def test_guessing_codes_through_the_download_is_rate_limited(
    client: httpx.AsyncClient,
) -> None:
    statuses = [
        (await client.get(f"/join/ACD-EFH-JK{c}/agent/linux-x86_64")).status_code
        for c in "MNPQRTUVWXY3479"
    ]
    # 10 a minute per address (AUXILIO_RATE_JOIN_PER_ADDRESS_PER_MINUTE), as for agents.
    assert statuses[:10] == [404] * 10
    assert set(statuses[10:]) == {429}
    limited = await client.get("/join/ACD-EFH-JKA/agent/linux-x86_64")
    assert 'data-code="rate_limited"' in limited.text
    assert int(limited.headers["retry-after"]) >= 1


def test_a_served_file_verifies_with_the_reader(tmp_path: Path) -> None:
    """The writer's output, as the route builds it, is what the agent accepts."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auxilio.agent.trailer import encode_trailer

    body = b"\x7fELF" + bytes(1000)
    now = datetime.now(UTC)
    key = Ed25519PrivateKey.generate()
    served = body + encode_trailer(signing_key=key, server_url="http://127.0.0.1:8000",
                                   join_code="ACD-EFH-JKM", issued_at=now,
                                   expires_at=now.replace(year=now.year + 1),
                                   binary_sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
    path = tmp_path / "agent"
    path.write_bytes(served)
    found = read_trailer(path)
    assert found is not None and found.join_code == "ACD-EFH-JKM"
