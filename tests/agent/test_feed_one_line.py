"""``feed.one_line``: the one sanitiser of what the person reads (feed, window, questions)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from auxilio.agent.feed import LINE_BREAK_MARK, Feed, one_line


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ñandú", "plain text, ñandú"),
        ("a\nb", f"a{LINE_BREAK_MARK}b"),
        ("a\r\nb", f"a{LINE_BREAK_MARK}b"),
        ("a\u2028b\x85c", f"a{LINE_BREAK_MARK}b{LINE_BREAK_MARK}c"),
        ("\x1b[2J\x1b]0;title\x07", "?[2J?]0;title?"),
        ("\x9b2J", "?2J"),  # the one-byte CSI of C1
        ("invoice\u202etxt.exe", "invoice?txt.exe"),  # a bidi override
        ("\u2066x\u2069", "?x?"),  # bidi isolates
        ("a\tb\u00a0c", "a b c"),
        ("zero\u200bwidth", "zero?width"),
    ],
)
def test_only_printable_text_is_shown(text: str, shown: str) -> None:
    assert one_line(text) == shown
    assert one_line(shown) == shown  # applying it twice changes nothing


def test_the_feed_prints_one_line_per_call() -> None:
    screen = io.StringIO()
    feed = Feed(Console(file=screen, width=80, color_system=None))

    feed.info("Reason given: routine\nYou allowed nothing\x1b[1A")
    feed.chat("Tech", ":smile: [bold]hi[/bold]")

    lines = screen.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"Reason given: routine{LINE_BREAK_MARK}You allowed nothing?[1A")
    assert lines[1].endswith("Tech: :smile: [bold]hi[/bold]")  # no markup, no emoji codes
