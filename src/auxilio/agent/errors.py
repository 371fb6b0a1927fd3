"""Errors that end the agent, each with a stable code and the process exit code it maps to."""

from __future__ import annotations

from typing import ClassVar


class AgentError(Exception):
    """An error shown to the person; ``exit_code`` is what ``auxilio agent join`` returns."""

    exit_code: ClassVar[int] = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ServerKeyChanged(AgentError):
    """The server presents another key than the one pinned on first contact: possibly someone
    in the middle, possibly a reinstalled server. Only the person (after checking with their
    organisation) may remove the pin; the agent never replaces it by itself."""

    exit_code = 3


class ConnectionFailed(AgentError):
    """The server could not be reached or the connection was lost for good."""
