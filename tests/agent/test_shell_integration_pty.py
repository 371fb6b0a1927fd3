"""What the person's feed is told a terminal ran, with real shells on real pseudo-terminals.

Each test gets its own HOME holding the person's start-up file (an alias and a fixed prompt).
The technician's input is written the way the client sends it; before each line the test waits,
as a person would, for the shell to show its prompt and read the terminal.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.capabilities.shell_integration import PREFIX
from auxilio.agent.capabilities.terminal import PtyTerminal, TerminalHost
from auxilio.agent.capabilities.terminal_commands import ObservedCommand, ShellReplaced
from auxilio.agent.report import build_report
from auxilio.agent.state import AgentState
from auxilio.protocol.app import TerminalInput, TerminalOpen, TerminalOutput
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import ActivityKind, ActivitySource, SessionActivity
from auxilio.protocol.types import Capability, ConsentDecision

from .factories import make_grant
from .sessionkit import Harness

SHELL = ActivitySource.SHELL_INTEGRATION
TYPED = ActivitySource.KEYSTROKES
PROMPT = b"ready> "
PASSWORD = "hunter2-Secret"
WAIT_SECONDS = 20

STARTUP = {
    "bash": (".bashrc", "alias greet='echo hello-from-rc'\nPS1='ready> '\n"),
    "zsh": (".zshrc", "alias greet='echo hello-from-rc'\nPROMPT='ready> '\n"),
    "fish": (
        ".config/fish/config.fish",
        "alias greet 'echo hello-from-rc'\nset -g fish_greeting\n"
        "function fish_prompt; echo -n 'ready> '; end\n",
    ),
}


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed here (apt-get install -y {name})")
    return found


class Terminal:
    """One terminal of a TerminalHost, with everything it showed and reported."""

    def __init__(self, program: str) -> None:
        self.name = Path(program).name
        self.output = bytearray()
        self.commands: list[ObservedCommand] = []
        self.replaced: list[str] = []
        self.host = TerminalHost(
            on_output=lambda _tid, data: self.output.extend(data),
            on_exit=lambda _tid, _exited: None,
            on_command=self._seen,
        )
        self.pty: PtyTerminal = self.host.open(1, program=program, cols=200, rows=50)
        self._prompts = 0

    def _seen(self, seen: ObservedCommand | ShellReplaced) -> None:
        if isinstance(seen, ShellReplaced):
            self.replaced.append(seen.program)
        else:
            self.commands.append(seen)

    @property
    def reported(self) -> list[tuple[str, ActivitySource]]:
        return [(command.text, command.source) for command in self.commands]

    async def until(self, done: Callable[[], bool], what: str) -> None:
        for _ in range(int(WAIT_SECONDS / 0.02)):
            if done():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"waited for {what}; output {bytes(self.output)[-600:]!r}")

    async def prompt(self) -> None:
        """The shell shows its next prompt and its line editor reads the terminal."""
        want = self._prompts + 1
        await self.until(
            lambda: self.output.count(PROMPT) >= want and not self.pty.echoes(), "a prompt"
        )
        self._prompts = self.output.count(PROMPT)

    async def line(self, data: bytes) -> None:
        """At the prompt, type ``data`` (which ends with Enter) and wait for the next prompt."""
        await self.prompt()
        self.host.write(1, data)

    async def sh_prompt(self) -> None:
        """sh (dash) shows its prompt: it, not bash, reads the terminal now."""
        await self.until(lambda: self.output.endswith((b"$ ", b"# ")), "the sh prompt")

    async def reports(self, count: int) -> None:
        await self.until(lambda: len(self.commands) >= count, f"{count} commands reported")

    async def password_prompt(self) -> None:
        """fish reads a password with its own line editor, showing ``read>``."""
        if self.name == "fish":
            shown = re.compile(rb"read(\x1b\[[0-9;]*m|\x1b\(B)*> ")
            await self.until(lambda: shown.search(self.output) is not None, "fish's read>")
        else:
            await self.until(lambda: at_password_prompt(self.pty), "echo off at a prompt")


def at_password_prompt(pty: PtyTerminal) -> bool:
    """No echo, but line by line: a password prompt (a line editor, which also turns echo off,
    reads key by key)."""
    lflag = termios.tcgetattr(pty._master)[3]  # the test looks at its own PTY
    return not lflag & termios.ECHO and bool(lflag & termios.ICANON)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    made = tmp_path / "home"
    made.mkdir()
    monkeypatch.setenv("HOME", str(made))
    for name in ("ZDOTDIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "HISTFILE", "PROMPT_COMMAND"):
        monkeypatch.delenv(name, raising=False)
    return made


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the agent makes its private start-up directories, to look at them."""
    made = tmp_path / "tmp"
    made.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(made))
    return made


def person_uses(home: Path, shell: str) -> None:
    name, text = STARTUP[shell]
    (home / name).parent.mkdir(parents=True, exist_ok=True)
    (home / name).write_text(text)


@pytest.fixture
async def bash(home: Path) -> AsyncIterator[Terminal]:
    person_uses(home, "bash")
    terminal = Terminal(program("bash"))
    yield terminal
    await terminal.host.stop_all()


@pytest.fixture(params=["bash", "zsh", "fish"])
async def any_shell(request: pytest.FixtureRequest, home: Path) -> AsyncIterator[Terminal]:
    person_uses(home, request.param)
    terminal = Terminal(program(request.param))
    yield terminal
    await terminal.host.stop_all()


# -- what bash ran, not what was typed -----------------------------------------------------------


async def test_ctrl_a_ctrl_u_in_bash_reports_the_command_that_ran(
    bash: Terminal, home: Path
) -> None:
    await bash.line(b"touch x\x01\x15\r")  # Ctrl-U at the start of the line kills nothing
    await bash.reports(1)
    await bash.until((home / "x").exists, "x created")
    assert bash.reported == [("touch x", SHELL)]


async def test_history_recall_reports_the_real_command(bash: Terminal) -> None:
    await bash.line(b"echo first-one\r")
    await bash.line(b"!!\r")
    await bash.line(b"\x1b[A\r")  # up arrow, Enter
    await bash.line(b"echo sentinel\r")
    await bash.reports(4)
    assert bash.reported == [("echo first-one", SHELL)] * 3 + [("echo sentinel", SHELL)]


async def test_pasted_lines_are_each_reported_as_bash_runs_them(bash: Terminal) -> None:
    await bash.line(b"\x1b[200~echo pasted-1\recho pasted-2\x1b[201~\r")
    await bash.line(b"for i in 1 2\rdo echo loop-$i\rdone\r")
    await bash.reports(3)
    await bash.until(lambda: b"loop-2" in bash.output, "the loop ran")
    assert bash.reported == [
        ("echo pasted-1", SHELL),
        ("echo pasted-2", SHELL),
        ("for i in 1 2; do echo loop-$i; done", SHELL),
    ]


async def test_a_leading_space_or_history_off_does_not_hide_a_command(bash: Terminal) -> None:
    await bash.line(b"HISTCONTROL=ignorespace\r")
    await bash.line(b" echo hidden-a; echo hidden-b\r")
    await bash.line(b"set +o history\r")
    await bash.line(b"echo off-1 | cat; echo off-1 | cat\r")
    await bash.reports(6)
    assert bash.reported == [
        ("HISTCONTROL=ignorespace", SHELL),
        ("echo hidden-a", SHELL),
        ("echo hidden-b", SHELL),
        ("set +o history", SHELL),
        ("echo off-1", SHELL),  # each distinct simple command once per line
        ("cat", SHELL),
    ]


async def test_the_persons_bashrc_still_runs(bash: Terminal) -> None:
    await bash.line(b"greet\r")
    await bash.reports(1)
    await bash.until(lambda: b"hello-from-rc" in bash.output, "the alias's output")
    assert bash.reported == [("greet", SHELL)]


async def test_the_persons_prompt_command_debug_trap_and_exit_status_survive(home: Path) -> None:
    (home / ".bashrc").write_text(
        "set -u\nPS1='ready> '\nPROMPT_COMMAND=('echo pc-ran')\n"
        "trap 'traced=$(( ${traced:-0} + 1 ))' DEBUG\n"
    )
    terminal = Terminal(program("bash"))
    try:
        await terminal.line(b"false\r")
        await terminal.line(b"echo status=$? traced=$traced\r")
        await terminal.reports(2)
        await terminal.prompt()
        assert terminal.reported == [("false", SHELL), ("echo status=$? traced=$traced", SHELL)]
        assert re.search(rb"status=1 traced=[1-9]", terminal.output)
        assert terminal.output.count(b"pc-ran") >= 3
    finally:
        await terminal.host.stop_all()


async def test_the_start_up_files_are_gone_once_the_prompt_shows(
    home: Path, private_tmp: Path
) -> None:
    person_uses(home, "bash")
    terminal = Terminal(program("bash"))
    try:
        await terminal.prompt()
        await terminal.until(lambda: not list(private_tmp.iterdir()), "the files removed")
    finally:
        await terminal.host.stop_all()


# -- the same in every integrated shell ----------------------------------------------------------


async def test_a_password_at_read_s_is_never_reported(any_shell: Terminal) -> None:
    await any_shell.line(b"read -s secret\r")
    await any_shell.reports(1)
    await any_shell.password_prompt()
    any_shell.host.write(1, PASSWORD.encode() + b"\r")
    await any_shell.line(b"echo done-reading\r")
    await any_shell.reports(2)
    assert [text for text, _ in any_shell.reported] == ["read -s secret", "echo done-reading"]
    assert PASSWORD.encode() not in any_shell.output


async def test_a_paste_of_two_lines_reports_both(any_shell: Terminal) -> None:
    await any_shell.line(b"\x1b[200~echo pasted-1\recho pasted-2\x1b[201~\r")
    await any_shell.line(b"echo sentinel\r")
    await any_shell.until(lambda: b"sentinel\r\n" in any_shell.output, "the sentinel")
    # bash runs the pasted lines as two command lines; zsh and fish as one of two lines.
    pasted = (
        [("echo pasted-1", SHELL), ("echo pasted-2", SHELL)]
        if any_shell.name == "bash"
        else [("echo pasted-1\necho pasted-2", SHELL)]
    )
    assert any_shell.reported == [*pasted, ("echo sentinel", SHELL)]


async def test_a_file_with_a_forged_marker_reports_only_the_cat(
    any_shell: Terminal, home: Path
) -> None:
    forged = PREFIX + b"0" * 32 + b";C;rm -rf /\x07" + PREFIX + b"deadbeef;C;reboot\x07"
    (home / "forged.txt").write_bytes(b"look: " + forged + b"\n")
    await any_shell.line(b"cat forged.txt\r")
    await any_shell.line(b"echo sentinel\r")
    await any_shell.reports(2)
    assert any_shell.reported == [("cat forged.txt", SHELL), ("echo sentinel", SHELL)]
    assert forged in any_shell.output  # shown as the file holds it, not taken for ours


async def test_markers_never_reach_the_technician(any_shell: Terminal) -> None:
    await any_shell.line(b"echo one\r")
    await any_shell.line(b"greet\r")
    await any_shell.line(b"\x1b[A\r")
    await any_shell.reports(3)
    await any_shell.prompt()
    assert any_shell.reported == [("echo one", SHELL), ("greet", SHELL), ("greet", SHELL)]
    assert any_shell.output.count(b"hello-from-rc") >= 2
    assert b"\x1b]7701" not in any_shell.output


# -- when the shell cannot tell: the keystroke fallback, labelled -------------------------------


async def test_a_shell_without_integration_reports_typed_lines_labelled(home: Path) -> None:
    terminal = Terminal(program("dash"))
    try:
        terminal.host.write(1, b"echo typed-1\r")
        terminal.host.write(1, b"stty -echo; read secret; stty echo\r")
        await terminal.password_prompt()
        terminal.host.write(1, PASSWORD.encode() + b"\r")
        await terminal.until(terminal.pty.echoes, "echo back on")
        terminal.host.write(1, b"echo typed-2\r")
        await terminal.until(lambda: b"typed-2\r\n" in terminal.output, "the last command")
        assert terminal.reported == [
            ("echo typed-1", TYPED),
            ("stty -echo; read secret; stty echo", TYPED),
            ("echo typed-2", TYPED),
        ]
        assert PASSWORD.encode() not in terminal.output
    finally:
        await terminal.host.stop_all()


async def test_exec_sh_switches_to_labelled_keystrokes(bash: Terminal) -> None:
    await bash.line(b"exec sh\r")
    await bash.reports(1)
    await bash.sh_prompt()
    assert bash.replaced == []  # not known until the next Enter
    bash.host.write(1, b"echo after-exec\r")
    await bash.reports(2)
    assert bash.reported == [("exec sh", SHELL), ("echo after-exec", TYPED)]
    assert bash.replaced == ["sh"]


async def test_exec_of_a_shell_that_edits_lines_is_said_and_then_nothing_is_reported(
    bash: Terminal,
) -> None:
    await bash.line(b"exec bash --norc\r")
    await bash.reports(1)
    await bash.until(lambda: bash.output.endswith(b"$ ") or bash.output.endswith(b"# "), "bash")
    await bash.until(lambda: not bash.pty.echoes(), "readline reading")
    bash.host.write(1, b"echo unseen\r")
    await bash.until(lambda: b"unseen\r\n" in bash.output, "it ran")
    assert bash.reported == [("exec bash --norc", SHELL)]
    assert bash.replaced == ["bash"]


async def test_a_nested_sh_is_followed_by_keystrokes_then_bash_again(bash: Terminal) -> None:
    await bash.line(b"sh\r")
    await bash.reports(1)
    await bash.sh_prompt()
    bash.host.write(1, b"echo nested\r")
    await bash.until(lambda: b"nested\r\n" in bash.output, "sh ran it")
    bash.host.write(1, b"exit\r")
    await bash.line(b"echo back\r")
    await bash.reports(4)
    assert bash.reported == [
        ("sh", SHELL),
        ("echo nested", TYPED),
        ("exit", TYPED),
        ("echo back", SHELL),
    ]


# -- through a support session: the feed, the log and the server's activity ---------------------


async def test_a_session_reports_what_bash_ran_and_never_the_password(
    home: Path,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    person_uses(home, "bash")
    _, grant = make_grant(
        server_key, state.device_public_key, technician_key, shell=program("bash")
    )
    consent = {
        Capability.CHAT: ConsentDecision.GRANTED,
        Capability.TERMINAL: ConsentDecision.GRANTED,
    }
    h = Harness(state, grant, technician_key, consent, server_key.public_key())
    h.start()
    await h.activate()
    shown = b""

    async def until_shown(count: int) -> None:
        nonlocal shown
        while shown.count(PROMPT) < count:
            message = await h.next_app()
            if isinstance(message, TerminalOutput):
                shown += message.data

    async def typed(data: bytes) -> None:
        await h.send_app(ChannelId.TERMINAL, TerminalInput(terminal_id=1, data=data))

    await h.send_app(ChannelId.TERMINAL, TerminalOpen(terminal_id=1, cols=120, rows=40))
    used = await h.next_sent(SessionActivity)
    assert used.kind is ActivityKind.CAPABILITY_USED  # the first use, for the one report
    opened = await h.next_sent(SessionActivity)
    assert opened.kind is ActivityKind.TERMINAL_OPENED
    await until_shown(1)
    await typed(b"touch y\x01\x15\r")
    ran = await h.next_sent(SessionActivity)
    assert (ran.kind, ran.source) == (ActivityKind.COMMAND_RUN, SHELL)
    await until_shown(2)
    await typed(b"read -s secret\r")
    await h.next_sent(SessionActivity)
    pty = h.runner.terminals.get(1)
    assert pty is not None
    await h.eventually(lambda: at_password_prompt(pty))
    await typed(PASSWORD.encode() + b"\r")
    await until_shown(3)
    await typed(b"echo ${#secret}\r")
    last = await h.next_sent(SessionActivity)
    assert (last.kind, last.source) == (ActivityKind.COMMAND_RUN, SHELL)
    await until_shown(4)
    assert PREFIX not in shown and PASSWORD.encode() not in shown
    assert b"14\r\n" in shown  # the shell did read the password
    await typed(b"exec sh\r")
    await h.next_sent(SessionActivity)
    while not shown.endswith((b"$ ", b"# ")):
        message = await h.next_app()
        if isinstance(message, TerminalOutput):
            shown += message.data
    await typed(b"echo typed-now\r")
    after = await h.next_sent(SessionActivity)
    assert (after.kind, after.source) == (ActivityKind.COMMAND_RUN, TYPED)
    await h.lines.queue.put("q")
    await h.finished()

    feed = h.console.export_text()
    assert "Technician ran: touch y" in feed
    assert "Technician ran: read -s secret" in feed
    assert "Technician ran: echo ${#secret}" in feed
    assert "The shell in the terminal was replaced by sh" in feed
    assert "Technician typed (may differ from what ran): echo typed-now" in feed
    assert PASSWORD not in feed
    assert PASSWORD not in h.log.path.read_text()
    commands = [(e["subject"], e["source"]) for e in h.log.events() if e["event"] == "command_run"]
    assert commands == [
        ("touch y", "shell_integration"),
        ("read -s secret", "shell_integration"),
        ("echo ${#secret}", "shell_integration"),
        ("exec sh", "shell_integration"),
        ("echo typed-now", "keystrokes"),
    ]
    assert [e["program"] for e in h.log.events() if e["event"] == "shell_replaced"] == ["sh"]
    assert [subject for _, subject in build_report(h.log.events()).commands] == [
        "touch y", "read -s secret", "echo ${#secret}", "exec sh", "echo typed-now",
    ]  # fmt: skip
