"""What the person sees while a support session runs (R2): a status line and a live feed.

``Feed`` writes plain lines to the terminal rather than a full-screen display: the person types
commands and chat on the same terminal, screen readers follow it, and a test can wait for the
lines. Every line of the feed starts with the time, so the person can match it against the
report later. Every line goes through ``one_line`` first: much of what is shown (a path, a file
name, a reason) was written by the technician, who must not be able to move the cursor, erase
the line that says what they did or reorder text with bidi controls. ``WindowFeed`` writes the
same lines to the terminal and to the session window, and passes the session's state and the
question being asked (``agent.questions``) on to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console

from auxilio.agent.i18n import EN, Texts
from auxilio.agent.session_window import (
    QuestionView,
    SessionView,
    SessionWindow,
    time_left_text,
)
from auxilio.protocol.types import Capability

# Shown in place of a line break inside one line: the person sees that the text had one.
LINE_BREAK_MARK = "\u21b5"  # ↵
# Everything that ends a line for str.splitlines(), shown as LINE_BREAK_MARK.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def one_line(text: str) -> str:
    """``text`` as one line the terminal prints as it is: line breaks become a visible mark,
    a tab or another space a space, every other control (C0, C1 with ESC among them, bidi
    overrides and isolates, zero-width format characters) a "?". The one sanitiser of what the
    person reads: the feed, the questions and the session window all use it."""
    out: list[str] = []
    for ch in text.replace("\r\n", "\n"):
        if ch.isprintable():
            out.append(ch)
        elif ch in _LINE_BREAKS:
            out.append(LINE_BREAK_MARK)
        elif ch.isspace():  # a tab, a no-break space
            out.append(" ")
        else:
            out.append("?")
    return "".join(out)


class Feed:
    def __init__(self, console: Console, texts: Texts = EN) -> None:
        self.console = console
        self.texts = texts

    def _line(self, text: str, kind: str, style: str) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        self.console.print(f"[dim]{stamp}[/dim] ", end="")
        # soft_wrap: the terminal wraps a long line itself; cut by Rich it would be two lines
        # to a screen reader, a copy-paste and a test waiting for it.
        self.console.print(
            one_line(text),
            style=style,
            markup=False,
            highlight=False,
            soft_wrap=True,
            emoji=False,
        )

    def info(self, text: str) -> None:
        self._line(text, "info", "")

    def activity(self, text: str) -> None:
        self._line(text, "activity", "bold cyan")

    def warning(self, text: str) -> None:
        self._line(text, "warning", "bold yellow")

    def alert(self, text: str) -> None:
        self._line(text, "alert", "bold red")

    def chat(self, who: str, text: str) -> None:
        self._line(f"{who}: {text}", "chat", "green")

    def status(self, *, technician: str, granted: list[str], seconds_left: float) -> None:
        """``Session active | technician <name> | <mm:ss> left | allowed: <capabilities>``."""
        allowed = ", ".join(sorted(granted)) or self.texts.nothing
        self._line(
            self.texts.status.format(
                technician=technician, left=time_left_text(seconds_left), allowed=allowed
            ),
            "status",
            "bold white on blue",
        )

    # The terminal shows these through the lines above; only a window has more to show.

    def show_state(
        self,
        *,
        technician: str,
        organisation: str,
        consented: Sequence[Capability],
        allowed: Sequence[Capability],
        ends_at: datetime,
    ) -> None:
        """The session as it stands now (called on every tick: cheap, and sent on change)."""

    def question_asked(self, question: QuestionView) -> None:
        """A question awaits the person's answer (the terminal already printed it)."""

    def question_closed(self, number: int) -> None:
        """Question ``number`` was answered, timed out or withdrawn."""


class WindowFeed(Feed):
    """Every line to the terminal and to the session window."""

    def __init__(self, console: Console, window: SessionWindow) -> None:
        super().__init__(console, window.texts)
        self.window = window

    def _line(self, text: str, kind: str, style: str) -> None:
        super()._line(text, kind, style)
        if kind != "status":  # the window shows the state itself, always up to date
            stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
            self.window.line(stamp, one_line(text), kind)

    def show_state(
        self,
        *,
        technician: str,
        organisation: str,
        consented: Sequence[Capability],
        allowed: Sequence[Capability],
        ends_at: datetime,
    ) -> None:
        self.window.show(
            SessionView(technician, organisation, tuple(consented), tuple(allowed), ends_at)
        )

    def question_asked(self, question: QuestionView) -> None:
        self.window.ask(question)

    def question_closed(self, number: int) -> None:
        self.window.question_closed(number)
