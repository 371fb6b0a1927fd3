"""The clipboard on the device: ``clipboard.set`` puts the technician's text on the person's
clipboard (answered ``clipboard.done``), ``clipboard.get`` reads it for them (answered
``clipboard.content``). Text only, on the X11 CLIPBOARD (``agent.screen.clipboard``).

A request is acted on only while ``clipboard`` passes the gate; anything refused is answered
``clipboard.error`` with a stable code: ``screen.clipboard.not_allowed``, ``.unavailable`` (no
X display to hold it), and the clipboard's own (``too_large``, ``empty``, ``not_text``,
``timeout``). Each transfer is a line in the person's feed (how many characters, which way) and
a ``session.activity`` (``clipboard_set`` / ``clipboard_read``: size and SHA-256 in clear, the
text never). The agent stays the selection's owner until another program takes it or the
capability ends (revoked, expired, the session over), when the connection to X is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from auxilio.agent.capabilities.base import Activity, SessionServices
from auxilio.agent.screen.clipboard import ClipboardRefused, ClipboardTransfer
from auxilio.protocol.app import AppMessage
from auxilio.protocol.clipboard import (
    ClipboardContent,
    ClipboardDone,
    ClipboardError,
    ClipboardGet,
    ClipboardSet,
)
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import Capability

logger = logging.getLogger(__name__)
T = TypeVar("T")
NOT_ALLOWED = "screen.clipboard.not_allowed"
UNAVAILABLE = "screen.clipboard.unavailable"


@dataclass(frozen=True, slots=True)
class ClipboardTexts:
    put: str  # {count}
    read: str  # {count}


CLIPBOARD_TEXTS = {
    "en": ClipboardTexts(
        put="The technician put {count} characters on your clipboard.",
        read="The technician read your clipboard ({count} characters).",
    ),
    "es": ClipboardTexts(
        put="El técnico puso {count} caracteres en su portapapeles.",
        read="El técnico leyó su portapapeles ({count} caracteres).",
    ),
}


class Clipboard(Protocol):
    def set_text(self, text: str) -> ClipboardTransfer: ...
    def get_text(self) -> tuple[str, ClipboardTransfer]: ...
    def close(self) -> None: ...


ClipboardFactory = Callable[[], Clipboard]


def open_x_clipboard() -> Clipboard:
    """The CLIPBOARD of ``DISPLAY`` (blocking: in a worker)."""
    from auxilio.agent.screen.clipboard import X11Clipboard

    name = os.environ.get("DISPLAY", "")
    if not name:
        raise ClipboardRefused(UNAVAILABLE, "no X display (DISPLAY is not set)")
    return X11Clipboard(name)


class ClipboardHandler:
    """The ``clipboard`` capability of one session (made by the dispatcher on first use)."""

    def __init__(
        self, services: SessionServices, *, clipboard_factory: ClipboardFactory = open_x_clipboard
    ) -> None:
        self._s = services
        self._factory = clipboard_factory
        self._clipboard: Clipboard | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auxilio-clipboard")
        self._closed = False

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _texts(self) -> ClipboardTexts:
        return CLIPBOARD_TEXTS.get(self._s.feed.texts.lang, CLIPBOARD_TEXTS["en"])

    async def handle(self, message: AppMessage) -> None:
        if not isinstance(message, ClipboardSet | ClipboardGet):
            self._s.log.append("ignored", what=f"{message.type} from the technician")
            return
        ref = message.request_id
        if self._closed or not self._s.gate(Capability.CLIPBOARD):
            await self._error(ref, NOT_ALLOWED, "the clipboard is not allowed")
            return
        try:
            clipboard = await self._open()
            if isinstance(message, ClipboardSet):
                text = message.text
                transfer = await self._run(lambda: clipboard.set_text(text))
            else:
                text, transfer = await self._run(clipboard.get_text)
        except ClipboardRefused as exc:
            await self._error(ref, exc.code, exc.message)
            return
        await self._s.mark_used(Capability.CLIPBOARD)
        count = len(text)
        if isinstance(message, ClipboardSet):
            self._s.feed.activity(self._texts().put.format(count=count))
            await self._report(ActivityKind.CLIPBOARD_SET, transfer)
            await self._s.send(ClipboardDone(request_id=ref, size=transfer.size))
        else:
            self._s.feed.activity(self._texts().read.format(count=count))
            await self._report(ActivityKind.CLIPBOARD_READ, transfer)
            await self._s.send(ClipboardContent(request_id=ref, text=text))

    async def _open(self) -> Clipboard:
        if self._clipboard is None:
            try:
                self._clipboard = await self._run(self._factory)
            except ClipboardRefused:
                raise
            except Exception as exc:  # the display refused us (gone, not X...)
                logger.warning("the clipboard could not be opened: %s", exc)
                raise ClipboardRefused(
                    UNAVAILABLE, f"the clipboard could not be opened: {exc}"
                ) from exc
        return self._clipboard

    async def _report(self, kind: ActivityKind, transfer: ClipboardTransfer) -> None:
        await self._s.report(
            Activity(
                Capability.CLIPBOARD, kind, f"{transfer.size} bytes", size=transfer.size,
                sha256=transfer.sha256,
            )
        )  # fmt: skip

    async def _error(self, ref: int, code: str, message: str) -> None:
        self._s.log.append("clipboard_error", code=code, message=message)
        await self._s.send(ClipboardError(ref=ref, code=code, message=message[:2000]))

    async def close(self) -> None:
        """Revoked, expired or the session over: give up the selection and the display."""
        if self._closed:
            return
        self._closed = True
        clipboard, self._clipboard = self._clipboard, None
        try:
            if clipboard is not None:
                await self._run(clipboard.close)
        finally:
            self._pool.shutdown(wait=False)
