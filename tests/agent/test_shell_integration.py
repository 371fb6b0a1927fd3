"""The shell's markers are taken out of the terminal output, whole, across reads, with a bounded
buffer; only markers with the terminal's nonce count."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auxilio.agent.capabilities.shell_integration import (
    MAX_BODY_BYTES,
    MAX_COMMAND_CHARS,
    PREFIX,
    Marker,
    MarkerKind,
    MarkerParser,
    ShellLaunch,
    prepare_shell,
    shell_kind,
)
from auxilio.agent.capabilities.terminal_commands import (
    CommandWatch,
    ObservedCommand,
    ShellReplaced,
)
from auxilio.protocol.frames import ActivitySource

TYPED = ActivitySource.KEYSTROKES

NONCE = "0123456789abcdef0123456789abcdef"


def marker(body: bytes, nonce: str = NONCE) -> bytes:
    return PREFIX + nonce.encode() + b";" + body + b"\x07"


def feed_all(parser: MarkerParser, *chunks: bytes) -> tuple[bytes, list[Marker]]:
    shown = b""
    found: list[Marker] = []
    for chunk in chunks:
        out, markers = parser.feed(chunk)
        shown += out
        found += markers
    return shown, found


def test_it_takes_a_command_marker_out_of_the_output() -> None:
    data = b"before" + marker(b"C;ls -la") + b"after" + marker(b"P") + b"$ "
    shown, found = MarkerParser(NONCE).feed(data)
    assert shown == b"beforeafter$ "
    assert found == [Marker(MarkerKind.COMMAND, "ls -la"), Marker(MarkerKind.PROMPT)]


def test_a_marker_split_at_every_byte_is_still_one_marker() -> None:
    data = b"x\x1b[1mbold" + marker(b"C;echo \\\\ \\x1b done") + b"y"
    for cut in range(len(data) + 1):
        shown, found = feed_all(MarkerParser(NONCE), data[:cut], data[cut:])
        assert shown == b"x\x1b[1mboldy", cut
        assert found == [Marker(MarkerKind.COMMAND, "echo \\ \x1b done")], cut


def test_a_marker_fed_one_byte_at_a_time_is_found() -> None:
    data = marker(b"C;touch x") + b"out"
    shown, found = feed_all(MarkerParser(NONCE), *(bytes([b]) for b in data))
    assert (shown, found) == (b"out", [Marker(MarkerKind.COMMAND, "touch x")])


def test_a_forged_marker_without_the_nonce_is_output_and_not_reported() -> None:
    forged = marker(b"C;rm -rf /", nonce="f" * 32)
    shown, found = MarkerParser(NONCE).feed(b"file: " + forged + b"\n")
    assert (shown, found) == (b"file: " + forged + b"\n", [])


def test_a_wrong_nonce_is_released_at_once_not_held() -> None:
    parser = MarkerParser(NONCE)
    shown, found = parser.feed(PREFIX + b"0123x")  # differs from the nonce at its fifth byte
    assert (shown, found) == (PREFIX + b"0123x", [])
    assert parser.flush() == b""


def test_an_unfinished_marker_is_held_then_released_when_it_cannot_be_one() -> None:
    parser = MarkerParser(NONCE)
    start = PREFIX + NONCE.encode() + b";C;abc"
    assert parser.feed(start) == (b"", [])
    # A control character other than BEL ends it: it was never a marker of ours.
    assert parser.feed(b"\r\n") == (start + b"\r\n", [])


def test_the_held_bytes_are_bounded() -> None:
    parser = MarkerParser(NONCE)
    start = PREFIX + NONCE.encode() + b";C;"
    shown, found = parser.feed(start + b"a" * (MAX_BODY_BYTES - 2))
    assert (shown, found) == (b"", [])  # still within the limit: could end with BEL
    tail = b"a" * 10
    shown, found = parser.feed(tail)
    assert found == []
    assert shown == start + b"a" * (MAX_BODY_BYTES - 2) + tail
    assert parser.flush() == b""


def test_a_partial_prefix_at_the_end_of_a_read_is_held_and_flushed_on_close() -> None:
    parser = MarkerParser(NONCE)
    assert parser.feed(b"text\x1b]77") == (b"text", [])
    assert parser.flush() == b"\x1b]77"


def test_other_escape_sequences_pass_untouched() -> None:
    data = b"\x1b]0;title\x07\x1b]633;E;ls\x07\x1b[?2004h\x1b]7700;x\x07"
    assert MarkerParser(NONCE).feed(data) == (data, [])


def test_an_unknown_kind_with_the_nonce_is_removed_and_not_reported() -> None:
    assert MarkerParser(NONCE).feed(b"a" + marker(b"Z;later") + b"b") == (b"ab", [])


def test_escaped_command_text_is_decoded_and_capped() -> None:
    body = b"C;" + b"caf\xc3\xa9 \\x0a \\x0A \\x7f \\\\x41 " + b"y" * (2 * MAX_COMMAND_CHARS)
    [found] = MarkerParser(NONCE).feed(marker(body))[1]
    assert found.text.startswith("café \n \n \x7f \\x41 y")
    assert len(found.text) == MAX_COMMAND_CHARS


def test_only_bash_zsh_and_fish_are_integrated() -> None:
    assert [shell_kind(p) for p in ("/bin/bash", "zsh", "/usr/bin/fish")] == [
        "bash",
        "zsh",
        "fish",
    ]
    assert [shell_kind(p) for p in ("/bin/sh", "/bin/dash", "/bin/bash-evil", "ksh")] == [
        None,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize("program", ["/bin/bash", "/usr/bin/zsh", "/usr/bin/fish"])
def test_the_start_up_files_are_private_and_carry_the_nonce(program: str) -> None:
    launch = prepare_shell(program, env={})
    try:
        assert launch.nonce is not None and len(launch.nonce) == 32
        assert launch.directory is not None
        assert stat.S_IMODE(launch.directory.stat().st_mode) == 0o700
        files = list(launch.directory.iterdir())
        assert files
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert any(launch.nonce in path.read_text() for path in files)
        assert not any("@NONCE@" in path.read_text() for path in files)
        assert launch.nonce not in " ".join(launch.argv) + " ".join(launch.env.values())
    finally:
        directory = launch.directory
        launch.remove_files()
    assert directory is not None and not directory.exists()


def test_a_shell_without_integration_starts_as_it_is() -> None:
    launch = prepare_shell("/bin/dash", env={})
    assert (launch.argv, launch.env, launch.nonce, launch.directory) == (
        ["/bin/dash"],
        {},
        None,
        None,
    )


def test_zsh_is_told_the_persons_own_zdotdir(tmp_path: Path) -> None:
    launch = prepare_shell("/usr/bin/zsh", env={"ZDOTDIR": str(tmp_path / "it's mine")})
    try:
        assert launch.directory is not None
        assert launch.env == {"ZDOTDIR": str(launch.directory)}
        zshenv = (launch.directory / ".zshenv").read_text()
        assert "ZDOTDIR='" + str(tmp_path) + "/it'\"'\"'s mine'" in zshenv
    finally:
        launch.remove_files()


# -- the watch: when the fallback takes over ---------------------------------------------------


@dataclass
class FakePty:
    """A terminal whose shell is whatever process ``pid`` names, echoing or not."""

    pid: int
    echo: bool = True
    group: int | None = None

    def echoes(self) -> bool:
        return self.echo

    def foreground_group(self) -> int | None:
        return self.group if self.group is not None else self.pid


def watching(pty: FakePty) -> tuple[CommandWatch, list[ObservedCommand | ShellReplaced]]:
    seen: list[ObservedCommand | ShellReplaced] = []
    launch = ShellLaunch(argv=["bash"], nonce=NONCE)
    watch = CommandWatch(7, launch, on_command=seen.append, clock=lambda: datetime.now(UTC))
    watch.attach(pty)
    return watch, seen


def test_typed_lines_at_the_integrated_shell_are_left_to_the_shell() -> None:
    watch, seen = watching(FakePty(pid=os.getpid()))
    watch.input(b"echo hi\r")
    assert seen == []


def test_a_replaced_shell_is_said_once_and_its_typed_lines_are_labelled() -> None:
    pty = FakePty(pid=os.getpid())
    watch, seen = watching(pty)
    child = subprocess.Popen(["sleep", "30"])
    try:
        pty.pid = child.pid  # same terminal, another program: what exec looks like from outside
        watch.input(b"echo one\r")
        watch.input(b"echo two\r")
    finally:
        child.kill()
        child.wait()
    assert [type(s).__name__ for s in seen] == [
        "ShellReplaced",
        "ObservedCommand",
        "ObservedCommand",
    ]
    replaced, one, two = seen
    assert isinstance(replaced, ShellReplaced) and replaced.program == "sleep"
    assert isinstance(one, ObservedCommand) and (one.text, one.source) == ("echo one", TYPED)
    assert isinstance(two, ObservedCommand) and two.text == "echo two"


def test_a_shell_that_is_gone_is_not_called_replaced() -> None:
    child = subprocess.Popen(["true"])
    pty = FakePty(pid=os.getpid())
    watch, seen = watching(pty)
    child.wait()
    pty.pid = child.pid
    watch.input(b"exit\r")
    assert seen == []


def test_nothing_typed_without_echo_is_looked_at_even_in_the_fallback() -> None:
    pty = FakePty(pid=os.getpid())
    watch, seen = watching(pty)
    child = subprocess.Popen(["sleep", "30"])
    try:
        pty.pid = child.pid
        watch.input(b"\r")  # the Enter that notices the replacement
        watch.input(b"pass")
        pty.echo = False
        watch.input(b"word\r")
        pty.echo = True
        watch.input(b"ls\r")
    finally:
        child.kill()
        child.wait()
    assert [(s.text, s.source) for s in seen if isinstance(s, ObservedCommand)] == [("ls", TYPED)]
