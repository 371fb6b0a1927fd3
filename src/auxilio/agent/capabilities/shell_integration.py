"""Shell integration: the shell on the PTY reports each command line it is about to run.

bash, zsh and fish are started with a small start-up file of ours (``shell/``) that first reads
the person's own configuration and then installs a pre-execution hook. The hook writes a private
escape sequence (in the manner of the OSC 133 / 633 marks of terminal emulators) on the PTY::

    ESC ] 7701 ; <nonce> ; P BEL                      a prompt is shown
    ESC ] 7701 ; <nonce> ; C ; <command line> BEL     the shell is about to run this line

The command line is escaped (``\\xNN`` for control characters, ``\\\\`` for a backslash), so a
marker never contains ESC or BEL. The nonce is random per terminal and lives only in the
shell's own variables: output of a program (``cat`` of a file holding a marker) cannot report a
command, because it does not know the nonce. :class:`MarkerParser` takes markers out of the output
before the technician sees it, across reads, with a bounded buffer.

A technician who controls the shell can defeat all of this (THREAT_MODEL.md says exactly how and
what the person then sees); the markers are evidence of what the shell ran, not a sandbox.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path

from auxilio.crypto.keys import write_private_file

PREFIX = b"\x1b]7701;"
NONCE_BYTES = 16
MAX_COMMAND_CHARS = 4096  # the hooks cut a line there; so does the keystroke fallback
# An escaped 4096-character line: up to 4 bytes per character, plus the kind.
MAX_BODY_BYTES = 4 * MAX_COMMAND_CHARS + 16

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_ESCAPED = re.compile(rb"\\(\\|x[0-9a-fA-F]{2})")


class MarkerKind(StrEnum):
    PROMPT = "P"
    COMMAND = "C"


@dataclass(frozen=True, slots=True)
class Marker:
    kind: MarkerKind
    text: str = ""


def _unescape(payload: bytes) -> str:
    def one(match: re.Match[bytes]) -> bytes:
        token = match.group(1)
        return b"\\" if token == b"\\" else bytes([int(token[1:], 16)])

    return _ESCAPED.sub(one, payload).decode("utf-8", "replace")


class MarkerParser:
    """Separates the shell's markers from terminal output, one read at a time.

    Bytes that could still turn into a marker (a prefix split across reads, a body whose BEL has
    not arrived) are held back, at most ``len(PREFIX) + nonce + MAX_BODY_BYTES`` of them; anything
    that cannot be one of ours (another escape sequence, a wrong nonce, a control character in
    the body, a body over the limit) goes to the technician unchanged and is never reported.
    """

    def __init__(self, nonce: str) -> None:
        self._expected = nonce.encode("ascii") + b";"
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, list[Marker]]:
        buf = self._held + data
        self._held = b""
        out = bytearray()
        markers: list[Marker] = []
        pos = 0
        while True:
            # Looking for the whole prefix (not every ESC) keeps colourful output at C speed.
            hit = buf.find(PREFIX, pos)
            if hit < 0:
                keep = _partial_prefix(buf, pos)  # a prefix cut by the end of this read
                out += buf[pos : len(buf) - keep]
                self._held = buf[len(buf) - keep :]
                break
            out += buf[pos:hit]
            end, marker = self._at(buf, hit)
            if end is None:  # might still be a marker: wait for the next read
                self._held = buf[hit:]
                break
            if end == hit:  # not ours: the ESC is output like any other byte
                out += b"\x1b"
                pos = hit + 1
                continue
            if marker is not None:
                markers.append(marker)
            pos = end
        return bytes(out), markers

    def flush(self) -> bytes:
        """What is held back, as output (the terminal is closing)."""
        held, self._held = self._held, b""
        return held

    def _at(self, buf: bytes, hit: int) -> tuple[int | None, Marker | None]:
        """At a prefix: ``(None, None)`` undecided, ``(hit, None)`` not a marker, or the index
        just past a marker and the marker (``None`` for a kind this version does not know)."""
        start = hit + len(PREFIX)
        nonce = buf[start : start + len(self._expected)]
        if len(nonce) < len(self._expected):
            # Compare what has arrived so far: a wrong nonce is released at once, not held.
            return (None, None) if self._expected.startswith(nonce) else (hit, None)
        if not hmac.compare_digest(nonce, self._expected):
            return hit, None
        body_start = start + len(self._expected)
        stop = _CONTROL.search(buf, body_start, body_start + MAX_BODY_BYTES + 1)
        if stop is None:
            return (None, None) if len(buf) - body_start <= MAX_BODY_BYTES else (hit, None)
        if buf[stop.start()] != 0x07:
            return hit, None
        return stop.start() + 1, _parse_body(buf[body_start : stop.start()])


def _partial_prefix(buf: bytes, pos: int) -> int:
    """How many bytes at the end of ``buf[pos:]`` are the start of a prefix, cut by the read."""
    for length in range(min(len(PREFIX) - 1, len(buf) - pos), 0, -1):
        if buf.endswith(PREFIX[:length]):
            return length
    return 0


def _parse_body(body: bytes) -> Marker | None:
    kind, _, payload = body.partition(b";")
    if kind == b"P":
        return Marker(MarkerKind.PROMPT)
    if kind == b"C":
        return Marker(MarkerKind.COMMAND, _unescape(payload)[:MAX_COMMAND_CHARS])
    return None


# -- starting a shell with the integration ----------------------------------------------------


@dataclass
class ShellLaunch:
    """How to start one terminal's shell: its argv, extra environment, and (when integrated) the
    nonce its markers carry and the private directory holding its start-up files."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    nonce: str | None = None
    directory: Path | None = None

    @property
    def integrated(self) -> bool:
        return self.nonce is not None

    def remove_files(self) -> None:
        """The shell has read its start-up files (or is gone): nobody needs them any more."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _resource(name: str) -> str:
    return (resources.files("auxilio.agent.capabilities") / "shell" / name).read_text("utf-8")


def _write(directory: Path, name: str, template: str, **values: str) -> Path:
    text = template
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    path = directory / name
    write_private_file(path, text.encode("utf-8"))
    return path


def shell_kind(program: str) -> str | None:
    """``bash``, ``zsh`` or ``fish`` when ``program`` is one we integrate with, else ``None``."""
    name = os.path.basename(program)
    return name if name in ("bash", "zsh", "fish") else None


def prepare_shell(program: str, *, env: dict[str, str]) -> ShellLaunch:
    """Write the start-up files for ``program`` in a new private directory (0700, files 0600)
    and say how to start it; a shell we do not integrate with starts as it is."""
    kind = shell_kind(program)
    if kind is None:
        return ShellLaunch(argv=[program])
    nonce = secrets.token_hex(NONCE_BYTES)
    directory = Path(tempfile.mkdtemp(prefix="auxilio-shell-"))
    try:
        if kind == "bash":
            rc = _write(directory, "bashrc", _resource("integration.bash"), NONCE=nonce)
            return ShellLaunch([program, "--rcfile", str(rc), "-i"], {}, nonce, directory)
        if kind == "zsh":
            user = shlex.quote(env.get("ZDOTDIR", ""))
            _write(directory, ".zshenv", _resource("zshenv.zsh"), USER_ZDOTDIR=user)
            _write(directory, ".zshrc", _resource("zshrc.zsh"), NONCE=nonce)
            return ShellLaunch([program, "-i"], {"ZDOTDIR": str(directory)}, nonce, directory)
        rc = _write(directory, "integration.fish", _resource("integration.fish"), NONCE=nonce)
        argv = [program, "--interactive", "--init-command", f"source {shlex.quote(str(rc))}"]
        return ShellLaunch(argv, {}, nonce, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
