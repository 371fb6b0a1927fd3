"""Remote control on the device: ``input.pointer`` / ``input.key`` to XTest events.

An event is acted on only while ``input`` passes the gate AND the screen view runs (``screen``
granted, a stream started, not paused by the person): the technician acts on the monitor they
see, scaled from the size of their picture of it (``agent.screen.input.RemoteInput``), and never
blind. Anything else is answered ``input.error`` with a stable code and nothing is sent:
``screen.input.not_allowed``, ``.not_viewing``, ``.view_paused``, ``.unavailable`` (no XTest or
no RECORD on this X server), and the injector's own (``out_of_range``, ``unknown_key``,
``rate_limited``, ``combination_refused``, ``revoked``...).

The person's own mouse and keyboard win (``agent.screen.local_input``): any of their input
pauses control for 1.5 s after their last event (the viewer gets ``input.paused`` then
``input.resumed``) and Ctrl+Shift+Escape takes it back for the rest of the grant (the viewer
gets ``input.revoked`` with ``take_back``). Their feed says the technician controls their mouse
and keyboard, and how to take it back. Pause, take-back, revocation, expiry and the session's
end release every key and button the technician held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from auxilio.agent.capabilities.base import Activity, SessionServices
from auxilio.agent.screen.input import (
    PAUSED,
    InputRefused,
    Modifiers,
    MonitorArea,
    RemoteInput,
)
from auxilio.agent.screen.local_input import (
    DEFAULT_PAUSE_SECONDS,
    TAKE_BACK_LABEL,
    LocalActivity,
    LocalInputError,
    LocalInputWatcher,
)
from auxilio.protocol.app import AppMessage
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.remote_control import (
    InputError,
    InputErrorCode,
    InputKey,
    InputPaused,
    InputPointer,
    InputResumed,
    InputRevoked,
)
from auxilio.protocol.types import Capability

logger = logging.getLogger(__name__)
T = TypeVar("T")
PAUSE_POLL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class InputTexts:
    controlling: str  # {technician}, {combination}
    taken_back: str
    stopped: str


INPUT_TEXTS = {
    "en": InputTexts(
        controlling=(
            "{technician} is controlling your mouse and keyboard. Using your own mouse or "
            "keyboard pauses them; press {combination} to take control back."
        ),
        taken_back="You took control back: the technician can no longer use your mouse and "
        "keyboard in this session.",
        stopped="The technician no longer controls your mouse and keyboard.",
    ),
    "es": InputTexts(
        controlling=(
            "{technician} está controlando su ratón y su teclado. Si usa su propio ratón o "
            "teclado, se detiene; pulse {combination} para recuperar el control."
        ),
        taken_back="Ha recuperado el control: el técnico ya no puede usar su ratón ni su "
        "teclado en esta sesión.",
        stopped="El técnico ya no controla su ratón ni su teclado.",
    ),
}


class ViewedScreen(Protocol):
    """What remote control needs of the screen handler (``capabilities.screen``)."""

    @property
    def monitor(self) -> MonitorArea | None: ...

    paused: bool


class Injector(Protocol):
    @property
    def paused(self) -> bool: ...
    def select_monitor(self, monitor: MonitorArea) -> None: ...
    def move(self, x: int, y: int, view_width: int, view_height: int) -> tuple[int, int]: ...
    def button(self, number: int, pressed: bool) -> None: ...
    def wheel(self, direction: str) -> None: ...
    def key(
        self, code: str, key: str, pressed: bool, modifiers: Modifiers | None = None
    ) -> None: ...
    def release_all(self) -> None: ...
    def end(self) -> None: ...


@dataclass(slots=True)
class Control:
    """An open remote control: the injector, and what to call to stop watching and close."""

    remote: Injector
    close: Callable[[], None]


OnPause = Callable[[LocalActivity], None]
OnTakeBack = Callable[[], None]
ControlFactory = Callable[[MonitorArea, OnPause, OnTakeBack, float], Control]


def open_x_control(
    monitor: MonitorArea, on_pause: OnPause, on_take_back: OnTakeBack, pause_seconds: float
) -> Control:
    """XTest on ``DISPLAY`` and a watcher of the person's input (blocking: in a worker)."""
    from Xlib.display import Display

    name = os.environ.get("DISPLAY", "")
    display = Display(name)
    try:
        if not display.has_extension("XTEST"):
            raise LocalInputError(InputErrorCode.UNAVAILABLE, "the X server has no XTEST extension")
        remote = RemoteInput(display, monitor)
        watcher = LocalInputWatcher(
            name, remote, pause_seconds=pause_seconds, on_pause=on_pause,
            on_take_back=on_take_back,
        )  # fmt: skip
    except BaseException:
        display.close()
        raise
    try:
        watcher.start()
    except BaseException:
        watcher.stop()
        remote.end()
        display.close()
        raise

    def close() -> None:
        try:
            watcher.stop()
        finally:
            remote.end()
            display.close()

    return Control(remote, close)


class InputHandler:
    """The ``input`` capability of one session (made by the dispatcher on first use)."""

    def __init__(
        self,
        services: SessionServices,
        *,
        control_factory: ControlFactory = open_x_control,
        pause_seconds: float = DEFAULT_PAUSE_SECONDS,
    ) -> None:
        self._s = services
        self._factory = control_factory
        self._pause_seconds = pause_seconds
        self._control: Control | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auxilio-input")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pause_task: asyncio.Task[None] | None = None
        self._taken_back = False
        self._closed = False
        self._pending: asyncio.Task[None] | None = None

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _texts(self) -> InputTexts:
        return INPUT_TEXTS.get(self._s.feed.texts.lang, INPUT_TEXTS["en"])

    # -- messages from the viewer -------------------------------------------------------------

    async def handle(self, message: AppMessage) -> None:
        if not isinstance(message, InputPointer | InputKey):
            self._s.log.append("ignored", what=f"{message.type} from the technician")
            return
        if not self._s.gate(Capability.INPUT):
            await self._release()
            await self._error(InputErrorCode.NOT_ALLOWED, "remote control is not allowed")
            return
        screen = self._s.handler(Capability.SCREEN)
        monitor = getattr(screen, "monitor", None)
        if monitor is None or not self._s.gate(Capability.SCREEN):
            await self._release()
            await self._error(
                InputErrorCode.NOT_VIEWING, "remote control acts only while the screen is viewed"
            )
            return
        if getattr(screen, "paused", False):
            await self._release()
            await self._error(
                InputErrorCode.VIEW_PAUSED, "the person paused the screen view; nothing was sent"
            )
            return
        control = await self._open(monitor)
        if control is None:
            return
        remote = control.remote
        try:
            await self._run(lambda: self._apply(remote, monitor, message))
        except InputRefused as exc:
            if exc.code != PAUSED:  # the viewer was told input.paused already
                await self._error(exc.code, exc.message)

    @staticmethod
    def _apply(remote: Injector, monitor: MonitorArea, message: InputPointer | InputKey) -> None:
        remote.select_monitor(monitor)
        if isinstance(message, InputKey):
            modifiers = Modifiers(
                ctrl=message.ctrl, shift=message.shift, alt=message.alt, meta=message.meta
            )
            remote.key(message.code, message.key, message.down, modifiers)
            return
        remote.move(message.x, message.y, message.width, message.height)
        for number in message.down:
            remote.button(number, True)
        for number in message.up:
            remote.button(number, False)
        for steps, ahead, back in ((message.wheel_y, "down", "up"),
                                   (message.wheel_x, "right", "left")):  # fmt: skip
            for _ in range(abs(steps)):
                remote.wheel(ahead if steps > 0 else back)

    async def _open(self, monitor: MonitorArea) -> Control | None:
        if self._control is not None:
            return self._control
        self._loop = asyncio.get_running_loop()
        try:
            control = await self._run(
                lambda: self._factory(
                    monitor, self._on_pause, self._on_take_back, self._pause_seconds
                )
            )
        except LocalInputError as exc:
            await self._error(InputErrorCode.UNAVAILABLE, exc.message)
            return None
        except Exception as exc:  # the display refused us (gone, no XTest...)
            logger.warning("remote control could not start: %s", exc)
            await self._error(InputErrorCode.UNAVAILABLE, f"remote control could not start: {exc}")
            return None
        self._control = control
        await self._s.mark_used(Capability.INPUT)
        await self._s.report(
            Activity(Capability.INPUT, ActivityKind.INPUT_SENT, "remote control started")
        )
        self._s.feed.warning(
            self._texts().controlling.format(
                technician=self._s.grant().technician_name, combination=TAKE_BACK_LABEL
            )
        )
        self._s.log.append("input_started")
        return control

    # -- the person (callbacks on the watcher's thread) ---------------------------------------

    def _on_pause(self, activity: LocalActivity) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._paused, activity.kind)

    def _on_take_back(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._took_back)

    def _paused(self, kind: str) -> None:
        if self._closed or self._taken_back:
            return
        if self._pause_task is None or self._pause_task.done():
            self._s.log.append("input_paused", by=kind)
            self._pause_task = asyncio.create_task(self._watch_pause())

    async def _watch_pause(self) -> None:
        await self._s.send(InputPaused())
        # The pause ends by time (1.5 s after the person's last event), not by an event.
        while True:
            control = self._control
            if control is None or not control.remote.paused:
                break
            await asyncio.sleep(PAUSE_POLL_SECONDS)
        if self._control is not None and not self._taken_back:
            self._s.log.append("input_resumed")
            await self._s.send(InputResumed())

    def _took_back(self) -> None:
        if self._closed or self._taken_back:
            return
        self._taken_back = True
        self._s.log.append("input_taken_back")
        self._s.feed.warning(self._texts().taken_back)
        self._pending = asyncio.create_task(self._tell_taken_back())  # held until sent

    async def _tell_taken_back(self) -> None:
        await self._s.send(InputRevoked(reason="take_back"))
        # Then the person's revocation of control, as their "r input" would be: the server
        # records it (capability.revoke by end_user) and both reports show it revoked.
        if self._s.revoke_by_person is not None:
            self._s.revoke_by_person(Capability.INPUT)

    # -- ending -------------------------------------------------------------------------------

    async def _error(self, code: str, message: str) -> None:
        self._s.log.append("input_error", code=code, message=message)
        await self._s.send(InputError(code=code, message=message[:2000]))

    async def _release(self) -> None:
        control = self._control
        if control is not None:
            await self._run(control.remote.release_all)

    async def close(self) -> None:
        """Revoked, expired or the session over: release everything, stop watching, and tell
        the viewer control ended."""
        if self._closed:
            return
        self._closed = True
        if self._pause_task is not None:
            self._pause_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pause_task
        control, self._control = self._control, None
        try:
            if control is not None:
                await self._run(control.close)
                self._s.feed.activity(self._texts().stopped)
                self._s.log.append("input_stopped")
                if not self._taken_back:
                    await self._s.send(InputRevoked(reason="ended"))
        finally:
            self._pool.shutdown(wait=False)
