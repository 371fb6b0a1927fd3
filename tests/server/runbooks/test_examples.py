"""The example runbooks: valid drafts, POSIX sh that parses, parameters used only quoted from
the environment, and collect-logs run for real (including a value that tries shell injection)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from auxilio.crypto.runbooks import Runbook
from auxilio.policy.roles import Role
from auxilio.runbooks import example_ids, load_example
from auxilio.server.context import Actor
from auxilio.server.runbooks.service import check_draft

EXAMPLES = ["clear-print-queue", "collect-logs", "flush-dns"]


def _checked(name: str) -> Runbook:
    example = load_example(name)
    author = Actor(
        id=uuid.uuid4(),
        display_name="Author",
        organisation_id=uuid.uuid4(),
        role=Role.SENIOR_TECHNICIAN,
    )
    assert author.organisation_id is not None
    return check_draft(
        example.fields,
        organisation_id=author.organisation_id,
        runbook_id=example.runbook_id,
        author=author,
    )


def _run(script: str, *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_three_examples_ship() -> None:
    assert example_ids() == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_is_a_valid_runbook_draft(name: str) -> None:
    runbook = _checked(name)
    assert runbook.interpreter == "sh"
    assert set(runbook.platforms) <= {"linux", "macos"}
    assert runbook.timeout_seconds <= 300, "fits the strictest template (school: 5m)"


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_each_example_script_parses_as_posix_sh(name: str, shell: str) -> None:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed")
    argv = [path, "--posix", "-n"] if shell == "bash" else [path, "-n"]
    result = subprocess.run(
        argv,
        input=load_example(name).fields["script"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", EXAMPLES)
def test_parameters_reach_a_script_only_quoted_from_the_environment(name: str) -> None:
    script = load_example(name).fields["script"]
    for match in re.finditer(r"AUXILIO_PARAM_[A-Z0-9_]+", script):
        before = script[max(0, match.start() - 2) : match.start()]
        after = script[match.end() : match.end() + 1]
        assert before == '"$' and after == '"', f"{name}: {match.group()} used unquoted"


def _log_home(tmp_path: Path, lines: int) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".xsession-errors").write_text("".join(f"line {i}\n" for i in range(1, lines + 1)))
    return home


def _env(home: Path, **params: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        **{f"AUXILIO_PARAM_{k.upper()}": v for k, v in params.items()},
    }


def test_collect_logs_shows_the_last_lines_of_the_users_logs(tmp_path: Path) -> None:
    home = _log_home(tmp_path, 300)
    result = _run(
        load_example("collect-logs").fields["script"], env=_env(home, lines="5"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"==> {home}/.xsession-errors (last 5 lines) <==" in result.stdout
    shown = [line for line in result.stdout.splitlines() if line.startswith("line ")]
    assert shown[:5] == [f"line {i}" for i in range(296, 301)]
    assert "line 295\n" not in result.stdout


def test_collect_logs_default_is_the_declared_one(tmp_path: Path) -> None:
    from auxilio.crypto.runbooks import validate_parameters

    runbook = _checked("collect-logs")
    values = validate_parameters(runbook, {})
    assert values == {"lines": "200"}
    home = _log_home(tmp_path, 250)
    result = _run(runbook.script, env=_env(home, lines=values["lines"]), cwd=tmp_path)
    assert result.returncode == 0
    assert "line 51\n" in result.stdout and "line 50\n" not in result.stdout


@pytest.mark.parametrize(
    "value",
    [
        "5; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "5 && touch pwned",
        "-1",
        "0",
        "5001",
        "99999999999999999999",
        "",
    ],
)
def test_collect_logs_refuses_a_value_that_is_not_a_line_count(tmp_path: Path, value: str) -> None:
    home = _log_home(tmp_path, 10)
    result = _run(
        load_example("collect-logs").fields["script"], env=_env(home, lines=value), cwd=tmp_path
    )
    assert result.returncode == 2, result.stdout
    assert "lines must be" in result.stderr
    assert not (tmp_path / "pwned").exists()
    assert "line 1" not in result.stdout


def test_collect_logs_says_when_there_is_nothing_to_read(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("tail",):  # no journalctl on this PATH
        found = shutil.which(tool)
        assert found is not None
        (bare / tool).symlink_to(found)
    env = {"PATH": str(bare), "HOME": str(home), "AUXILIO_PARAM_LINES": "10"}
    script = load_example("collect-logs").fields["script"]
    # /var/log may hold readable files on this machine: only the verdict line is asserted.
    result = _run(script, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if "==>" not in result.stdout:
        assert "No log readable by this user was found." in result.stdout


def test_clear_print_queue_fails_clearly_without_cups(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    result = _run(
        load_example("clear-print-queue").fields["script"],
        env={"PATH": str(bare), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "CUPS command 'lpstat' is not installed" in result.stderr


def test_clear_print_queue_reports_what_it_removed(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    state = tmp_path / "cancelled"
    # A stand-in CUPS: two jobs until cancel -a runs, none after.
    (bare / "lpstat").write_text(
        f'#!/bin/sh\n[ -e "{state}" ] || printf "%s\\n" "office-12 ann 1024 Mon" '
        '"office-13 bob 2048 Mon"\n'
    )
    (bare / "cancel").write_text(f'#!/bin/sh\n[ "$1" = -a ] && : > "{state}"\n')
    for tool in ("lpstat", "cancel"):
        (bare / tool).chmod(0o755)
    env = {"PATH": f"{bare}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(tmp_path)}
    result = _run(load_example("clear-print-queue").fields["script"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Removed: office-12 ann 1024 Mon" in result.stdout
    assert "Removed 2 job(s)." in result.stdout


def test_flush_dns_says_so_when_there_is_no_cache(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "uname").write_text("#!/bin/sh\necho Linux\n")
    (bare / "pgrep").write_text("#!/bin/sh\nexit 1\n")  # nothing runs
    for tool in ("uname", "pgrep"):
        (bare / tool).chmod(0o755)
    result = _run(
        load_example("flush-dns").fields["script"],
        env={"PATH": str(bare), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "No DNS cache was found to flush" in result.stdout


def test_flush_dns_fails_when_a_running_cache_cannot_be_flushed(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "uname").write_text("#!/bin/sh\necho Linux\n")
    (bare / "pgrep").write_text('#!/bin/sh\n[ "$2" = systemd-resolved ]\n')
    (bare / "resolvectl").write_text("#!/bin/sh\necho 'Access denied' >&2\nexit 1\n")
    for tool in ("uname", "pgrep", "resolvectl"):
        (bare / tool).chmod(0o755)
    result = _run(
        load_example("flush-dns").fields["script"],
        env={"PATH": str(bare), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Could not flush systemd-resolved: Access denied" in result.stderr
