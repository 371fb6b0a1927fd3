"""What the person sees while a support session runs (R2): a status line and a live feed.

``Feed`` writes plain lines to the terminal rather than a full-screen display: the person types
commands and chat on the same terminal, screen readers follow it, and a test can wait for the
lines. Every line of the feed starts with the time, so the person can match it against the
report later. ``WindowFeed`` writes the same lines to the terminal and to the session window,
and passes the session's state and the question being asked (``agent.questions``) on to it.
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


class Feed:
    def __init__(self, console: Console, texts: Texts = EN) -> None:
        self.console = console
        self.texts = texts

    def _line(self, text: str, kind: str, style: str) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        self.console.print(f"[dim]{stamp}[/dim] ", end="")
        # soft_wrap: the terminal wraps a long line itself; cut by Rich it would be two lines
        # to a screen reader, a copy-paste and a test waiting for it.
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

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
            self.window.line(stamp, text, kind)

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
