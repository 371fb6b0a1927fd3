"""The scripted mode's action parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from auxilio.client.script import (
    End,
    Expect,
    Extend,
    RunCommand,
    ScriptError,
    SendChat,
    Wait,
    load_actions,
    parse_action,
)


def test_it_reads_every_kind_of_action() -> None:
    assert parse_action("chat:hello there") == SendChat("hello there")
    assert parse_action("term:echo hi") == RunCommand("echo hi")
    assert parse_action("expect:hi") == Expect("hi")
    assert parse_action("wait:1.5") == Wait(1.5)
    assert parse_action("extend:15:the backup: still copying") == Extend(
        15, "the backup: still copying"
    )
    assert parse_action("end") == End()
    assert parse_action("  end \n") == End()


def test_it_keeps_colons_after_the_first_in_the_argument() -> None:
    assert parse_action("chat:see http://example.org:8080") == SendChat(
        "see http://example.org:8080"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "is not an action"),
        ("shout:hi", "unknown action 'shout'"),
        ("chat:   ", "empty chat message"),
        ("expect:", "needs the text"),
        ("wait:soon", "not a number of seconds"),
        ("wait:-1", "between 0 and"),
        ("extend:15", "needs MINUTES:REASON"),
        ("extend:15:   ", "needs MINUTES:REASON"),
        ("extend:0:why", "1 to 1440 whole minutes"),
        ("extend:1.5:why", "1 to 1440 whole minutes"),
        ("extend:99999:why", "1 to 1440 whole minutes"),
    ],
)
def test_it_rejects_bad_actions_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_action(text)


def test_a_script_file_skips_comments_and_names_the_bad_line(tmp_path: Path) -> None:
    script = tmp_path / "fix.txt"
    script.write_text("# greet first\nchat:hello\n\nterm:uptime\nbogus\n")

    with pytest.raises(ScriptError, match=r"fix\.txt:5"):
        load_actions([], script)


def test_script_file_actions_come_before_send_options(tmp_path: Path) -> None:
    script = tmp_path / "fix.txt"
    script.write_text("chat:from the file\n")

    actions = load_actions(["end"], script)

    assert actions == [SendChat("from the file"), End()]


def test_a_bad_send_option_is_named_by_its_position() -> None:
    with pytest.raises(ScriptError, match="--send #2"):
        load_actions(["chat:ok", "nope"], None)


def test_a_missing_script_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="cannot read"):
        load_actions([], tmp_path / "absent.txt")
