"""Clipboard messages (channel CLIPBOARD): text put on the person's clipboard by the technician
(``clipboard.set``, answered ``clipboard.done``) and the person's clipboard read for them
(``clipboard.get``, answered ``clipboard.content``); ``clipboard.error`` refuses either.

They travel on a channel of their own: the clipboard is meant to be a capability of its own,
granted and revoked apart from the screen view and remote control. Text only, at most
``MAX_CLIPBOARD_BYTES`` of UTF-8 either way (the device's X11 clipboard takes no more,
``agent.screen.clipboard``); each answer names the request it answers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from auxilio.protocol.types import WireModel

MAX_CLIPBOARD_BYTES = 128 * 1024  # agent.screen.clipboard.DEFAULT_MAX_BYTES

ClipboardRequestId = Annotated[int, Field(ge=0, le=2**32 - 1)]
ClipboardSize = Annotated[int, Field(ge=0, le=MAX_CLIPBOARD_BYTES)]
ClipboardErrorCodeText = Annotated[
    str, StringConstraints(pattern=r"^screen\.clipboard(\.[a-z0-9_]+)+$", max_length=100)
]


def _within_limit(text: str) -> str:
    size = len(text.encode("utf-8"))
    if size > MAX_CLIPBOARD_BYTES:
        raise ValueError(f"{size} bytes of UTF-8; the clipboard takes {MAX_CLIPBOARD_BYTES}")
    return text


class ClipboardSet(WireModel):
    """Technician -> device: put ``text`` on the person's clipboard."""

    type: Literal["clipboard.set"] = "clipboard.set"
    request_id: ClipboardRequestId
    text: Annotated[str, StringConstraints(min_length=1)]

    _limit = field_validator("text")(_within_limit)


class ClipboardDone(WireModel):
    """Device -> technician: the text of ``clipboard.set`` is on the clipboard (``size``
    bytes of UTF-8)."""

    type: Literal["clipboard.done"] = "clipboard.done"
    request_id: ClipboardRequestId
    size: ClipboardSize


class ClipboardGet(WireModel):
    """Technician -> device: read the person's clipboard."""

    type: Literal["clipboard.get"] = "clipboard.get"
    request_id: ClipboardRequestId


class ClipboardContent(WireModel):
    """Device -> technician: the text on the person's clipboard."""

    type: Literal["clipboard.content"] = "clipboard.content"
    request_id: ClipboardRequestId
    text: str

    _limit = field_validator("text")(_within_limit)


class ClipboardError(WireModel):
    """Device -> technician: the request ``ref`` was refused; ``code`` is stable
    (``screen.clipboard.too_large``, ``.empty``, ``.not_text``, ``.timeout``...)."""

    type: Literal["clipboard.error"] = "clipboard.error"
    ref: ClipboardRequestId
    code: ClipboardErrorCodeText
    message: Annotated[str, StringConstraints(max_length=2000)] = ""


CLIPBOARD_JSON_TYPES = frozenset({
    "clipboard.set", "clipboard.done", "clipboard.get", "clipboard.content", "clipboard.error",
})  # fmt: skip
