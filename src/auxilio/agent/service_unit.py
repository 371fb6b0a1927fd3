"""The agent as a service: a systemd user unit on Linux (installed by ``auxilio agent enroll``);
Windows and macOS are documented only (docs/unattended.md, ``OTHER_SYSTEMS``).

The unit runs ``auxilio agent run --state-dir <dir>`` as the person who enrolled, never as root:
the device key, the pre-authorisations and the log stay that person's. ``Restart=on-failure``
brings it back after a crash or a lost network; ``RestartPreventExitStatus`` keeps it stopped
when the server revoked the device or the server key changed (exit codes 5 and 3), which a
restart cannot cure and which would otherwise make it knock at the server forever.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

UNIT_NAME = "auxilio-agent.service"
# Exit codes of `auxilio agent run` that a restart cannot cure (agent/daemon.py).
EXIT_KEY_CHANGED = 3
EXIT_DEVICE_REVOKED = 5

OTHER_SYSTEMS = """\
Windows and macOS: no service is installed for you. Run the same command at log-in:
  Windows: Task Scheduler, a task "At log on" of your account running
    {command}
  macOS: a LaunchAgent, ~/Library/LaunchAgents/org.auxilio.agent.plist with ProgramArguments
    {command}
    RunAtLoad true and KeepAlive {{SuccessfulExit: false}}; load it: launchctl load <that file>
(docs/unattended.md has both in full.)"""


def agent_command(state_dir: Path) -> list[str]:
    """The command that runs the service: this very program. The one-file agent is its own
    interpreter (``sys.executable`` is the binary, whose command line is the agent's); an
    installed Python package runs through the interpreter that runs it now."""
    state = str(state_dir.expanduser().resolve())
    if getattr(sys, "frozen", False):
        return [sys.executable, "run", "--state-dir", state]
    return [sys.executable, "-m", "auxilio", "agent", "run", "--state-dir", state]


def _quote(argument: str) -> str:
    """One ExecStart word: double-quoted, with systemd's escapes (backslash, quote, and ``%``,
    the specifier prefix)."""
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def unit_text(command: Sequence[str]) -> str:
    return (
        "[Unit]\n"
        "Description=Auxilio agent: unattended access under the owner's pre-authorisation\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(_quote(word) for word in command)}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        f"RestartPreventExitStatus={EXIT_KEY_CHANGED} {EXIT_DEVICE_REVOKED}\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def unit_path(home: Path | None = None) -> Path:
    base = os.environ.get("XDG_CONFIG_HOME")
    config = Path(base) if base and home is None else (home or Path.home()) / ".config"
    return config / "systemd" / "user" / UNIT_NAME


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603


@dataclass
class Installed:
    path: Path
    command: list[str]
    started: bool = False
    said: list[str] = field(default_factory=list)


def install_unit(
    state_dir: Path,
    *,
    start: bool = True,
    home: Path | None = None,
    systemctl: str | None = None,
    run: Runner = _run,
    command: list[str] | None = None,
) -> Installed:
    """Write the unit; with ``start`` and a systemctl on PATH, ``daemon-reload`` and ``enable
    --now`` it. ``said`` tells the person what was done (and what to do where nothing was)."""
    command = command or agent_command(state_dir)
    path = unit_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(unit_text(command))
    os.replace(tmp, path)
    done = Installed(path=path, command=command)
    done.said.append(f"Wrote the systemd user unit {path}.")
    if not start:
        done.said.append(f"Not started (--no-service). Start it with: systemctl --user enable "
                         f"--now {UNIT_NAME}")  # fmt: skip
        return done
    tool = systemctl if systemctl is not None else shutil.which("systemctl")
    if not tool:
        done.said.append("systemctl was not found: start the agent yourself at log-in with: "
                         + " ".join(command))  # fmt: skip
        return done
    for step in (["daemon-reload"], ["enable", "--now", UNIT_NAME]):
        answer = run([tool, "--user", *step])
        if answer.returncode != 0:
            problem = (answer.stderr or answer.stdout).strip() or f"exit {answer.returncode}"
            done.said.append(f"systemctl --user {' '.join(step)} failed: {problem}. The unit is "
                             "written; start it with: systemctl --user enable --now "
                             + UNIT_NAME)  # fmt: skip
            return done
    done.started = True
    done.said.append(f"Enabled and started {UNIT_NAME} (systemctl --user status {UNIT_NAME}).")
    done.said.append("To keep it running while you are logged out: loginctl enable-linger")
    return done


def other_systems_note(command: Sequence[str]) -> str:
    return OTHER_SYSTEMS.format(command=" ".join(command))


def install_service(state_dir: Path, *, start: bool, say: Callable[[str], None]) -> None:
    """After enrolment: the unit on Linux (unless ``start`` is False: --no-service), the notes
    for Windows and macOS everywhere."""
    import platform

    command = agent_command(state_dir)
    if not start:
        say("No service installed (--no-service). Run the agent with: " + " ".join(command))
        return
    if platform.system() == "Linux":
        for line in install_unit(state_dir, command=command).said:
            say(line)
    say(other_systems_note(command))
