"""``auxilio connect`` in interactive mode: a ``/command`` it does not know is an error shown
locally, never a chat message to the person."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auxilio.client.interactive import InteractiveDriver, unknown_command
from auxilio.client.output import InteractiveOutput


class _Session:
    """What the chat loop needs of a ``TechnicianSession``: it records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.ended = False
        self.granted: tuple[str, ...] = ("chat",)
        self.revoked: dict[str, tuple[str, datetime]] = {}

    async def send_chat(self, text: str) -> None:
        self.sent.append(text)

    async def end(self) -> None:
        self.ended = True


@pytest.fixture
def driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[InteractiveDriver, io.StringIO]]:
    with (tmp_path / "stdin").open("w+") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        stream = io.StringIO()
        yield InteractiveDriver(InteractiveOutput(stream)), stream


async def _type(driver: InteractiveDriver, session: Any, *lines: str) -> None:
    for line in lines:
        await driver._chat_input(session, line.encode() + b"\n")


@pytest.mark.parametrize("line", ["/screen", "/files get /etc/passwd", "/Term", "/"])
async def test_an_unknown_command_is_an_error_and_nothing_is_sent(
    driver: tuple[InteractiveDriver, io.StringIO], line: str
) -> None:
    loop, stream = driver
    session = _Session()
    await _type(loop, session, line)
    assert session.sent == []
    assert not session.ended
    shown = stream.getvalue()
    assert "error< unknown command" in shown
    assert "nothing was sent" in shown


async def test_a_known_command_with_arguments_is_refused_not_sent(
    driver: tuple[InteractiveDriver, io.StringIO],
) -> None:
    loop, stream = driver
    session = _Session()
    await _type(loop, session, "/end now")
    assert (session.sent, session.ended) == ([], False)
    assert "/end takes no arguments" in stream.getvalue()


async def test_text_and_a_doubled_slash_are_chat(
    driver: tuple[InteractiveDriver, io.StringIO],
) -> None:
    loop, _ = driver
    session = _Session()
    await _type(loop, session, "hello there", "//screen is what I meant")
    assert session.sent == ["hello there", "/screen is what I meant"]


async def test_the_known_commands_still_work(
    driver: tuple[InteractiveDriver, io.StringIO],
) -> None:
    loop, stream = driver
    session = _Session()
    await _type(loop, session, "/help", "/end")
    assert session.ended and session.sent == []
    assert "Commands: /term" in stream.getvalue()


def test_only_slash_lines_outside_the_commands_are_unknown() -> None:
    assert unknown_command("/term") is None
    assert unknown_command("plain text") is None
    assert unknown_command("//x") is None
    assert unknown_command("/screen") is not None


async def test_term_after_the_person_revoked_it_says_so_and_when(
    driver: tuple[InteractiveDriver, io.StringIO],
) -> None:
    # Observed: after the person revoked the terminal, /term said "not granted".
    loop, stream = driver
    session = _Session()
    at = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)
    session.revoked["terminal"] = ("end_user", at)
    await _type(loop, session, "/term")
    shown = stream.getvalue()
    assert f"the terminal was revoked by the end user at {at.astimezone():%H:%M:%S %Z}" in shown
    assert "not granted" not in shown and session.sent == []
