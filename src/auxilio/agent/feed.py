"""What the person sees while a support session runs (R2): a status line and a live feed.

Plain lines rather than a full-screen display: the person types commands and chat on the same
terminal, screen readers follow it, and a test can wait for the lines. Every line of the feed
starts with the time, so the person can match it against the report later.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

HELP = "Type a message to chat, 'r <capability>' to revoke one, 'q' or Ctrl-C to end the session."


def _time_left(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Feed:
    def __init__(self, console: Console) -> None:
        self.console = console

    def _line(self, text: str, style: str) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        self.console.print(f"[dim]{stamp}[/dim] ", end="")
        self.console.print(text, style=style, markup=False, highlight=False)

    def info(self, text: str) -> None:
        self._line(text, "")

    def activity(self, text: str) -> None:
        self._line(text, "bold cyan")

    def warning(self, text: str) -> None:
        self._line(text, "bold yellow")

    def alert(self, text: str) -> None:
        self._line(text, "bold red")

    def chat(self, who: str, text: str) -> None:
        self._line(f"{who}: {text}", "green")

    def status(self, *, technician: str, granted: list[str], seconds_left: float) -> None:
        """``Session active | technician <name> | <mm:ss> left | allowed: <capabilities>``."""
        allowed = ", ".join(sorted(granted)) or "nothing"
        self._line(
            f"Session active | technician {technician} | {_time_left(seconds_left)} left | "
            f"allowed: {allowed}",
            "bold white on blue",
        )
