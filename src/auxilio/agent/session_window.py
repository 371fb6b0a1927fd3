"""The session window (R2): visible for the whole support session, for people without a terminal.

It shows who is connected, what they may do in plain words, the time left in the device's own
time, the live feed, a "Stop" button per capability the person allowed and one large "End
session" button; it also asks an extension (reason, new end, Accept / Refuse; no answer is a
refusal, decided by the runner's own clock). It can be minimised; closing it asks whether to end
the session, and ends it if so: the window is never gone while the session runs.

Threads: Tk runs in a thread of its own (as the consent window does). The asyncio side talks to
it only through ``_inbox`` (a thread-safe queue the Tk thread drains every ``POLL_MS``); the
window talks back only through ``on_event(kind, value)``, called in the Tk thread, which the
caller routes into the runner's queue with ``loop.call_soon_threadsafe``. The window decides
nothing: the runner checks every event as it checks the person's typed commands.

Events: ``("end", None)``, ``("revoke", Capability)``, ``("extension", ConsentDecision)``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auxilio.agent.consent import clock_text
from auxilio.agent.consent_window import WidgetNames
from auxilio.agent.i18n import EN, Texts
from auxilio.protocol.types import Capability, ConsentDecision

POLL_MS = 100
MAX_FEED_LINES = 500
WRAP = 640
EventSink = Callable[[str, Any], None]
_FEED_COLOURS = {"info": "#202020", "activity": "#0b5394", "warning": "#9a5b00",
                 "alert": "#b00020", "chat": "#1e6b2a"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SessionView:
    """What the window shows about the session; the runner sends a new one when it changes."""

    technician: str
    organisation: str
    consented: tuple[Capability, ...]  # what the person allowed, in the grant's order
    allowed: tuple[Capability, ...]  # what is allowed now (not revoked, not expired)
    ends_at: datetime


def into_loop(loop: asyncio.AbstractEventLoop, sink: Callable[[], EventSink]) -> EventSink:
    """The window's events (from its Tk thread) into ``sink()`` (the runner's ``post``), run in
    the asyncio loop. ``sink`` is looked up late: the window is made before the runner."""

    def deliver(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(lambda: sink()(kind, value))
        except RuntimeError:  # the loop is closed: the session is over already
            return

    return deliver


def time_left_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class SessionWindow:
    def __init__(
        self,
        *,
        on_event: EventSink,
        texts: Texts = EN,
        on_ready: Callable[[SessionWindow], None] | None = None,
    ) -> None:
        self.texts = texts
        self._on_event = on_event
        self._on_ready = on_ready
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sent: SessionView | None = None  # asyncio side: the last view sent
        self._view: SessionView | None = None  # Tk side: the view shown
        self._extension_until: float | None = None
        # Tk widgets, only touched in the Tk thread; None outside it.
        self.root: Any = None
        self.end_button: Any = None
        self.revoke_buttons: dict[Capability, Any] = {}
        self.accept_button: Any = None
        self.refuse_button: Any = None
        self._widgets: dict[str, Any] = {}

    # -- called from the asyncio side (any thread) ----------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agent-session-window", daemon=True)
        self._thread.start()

    def show(self, view: SessionView) -> None:
        if view != self._sent:
            self._sent = view
            self._inbox.put(("view", view))

    def line(self, stamp: str, text: str, kind: str) -> None:
        self._inbox.put(("line", (stamp, text, kind)))

    def ask_extension(self, *, question: str, reason: str, seconds: int) -> None:
        self._inbox.put(("extension", (question, reason, seconds)))

    def extension_closed(self) -> None:
        self._inbox.put(("extension_closed", None))

    def close(self, timeout: float = 10.0) -> None:
        """Close the window and wait for its thread (blocking: call it through to_thread)."""
        self._inbox.put(("close", None))
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the Tk thread --------------------------------------------------------------------------

    def _run(self) -> None:
        import tkinter as tk
        from tkinter import font as tkfont

        t = self.texts
        root: Any = tk.Tk()
        self.root = root
        root.title(t.session_window_title)
        root.minsize(560, 420)
        base: Any = tkfont.nametofont("TkDefaultFont")
        big: Any = base.copy()
        big.configure(size=int(base.cget("size")) + 4, weight="bold")
        bold: Any = base.copy()
        bold.configure(weight="bold")
        w = self._widgets
        w["who"] = tk.Label(root, font=big, anchor="w", padx=12, pady=8)
        w["who"].pack(fill="x")
        w["left"] = tk.Label(root, font=bold, anchor="w", padx=12)
        w["left"].pack(fill="x")
        w["may"] = tk.Frame(root, padx=12, pady=8)
        w["may"].pack(fill="x")
        ext: Any = tk.Frame(root, padx=12, pady=8, bg="#fff4ce")
        w["extension"] = ext
        w["ext_question"] = tk.Label(ext, font=bold, anchor="w", justify="left", bg="#fff4ce",
                                     wraplength=WRAP)  # fmt: skip
        w["ext_question"].pack(fill="x")
        w["ext_reason"] = tk.Label(ext, anchor="w", justify="left", bg="#fff4ce",
                                   wraplength=WRAP)  # fmt: skip
        w["ext_reason"].pack(fill="x")
        w["ext_left"] = tk.Label(ext, anchor="w", bg="#fff4ce")
        w["ext_left"].pack(fill="x")
        self.accept_button = tk.Button(ext, text=t.extension_accept, command=lambda: self._answer(
            ConsentDecision.GRANTED))  # fmt: skip
        self.accept_button.pack(side="left")
        self.refuse_button = tk.Button(ext, text=t.extension_refuse, command=lambda: self._answer(
            ConsentDecision.REFUSED))  # fmt: skip
        self.refuse_button.pack(side="left", padx=8)
        self.end_button = tk.Button(
            root, text=t.end_session, font=big, bg="#b00020", fg="white",
            activebackground="#d0002a", activeforeground="white", padx=20, pady=12,
            command=lambda: self._on_event("end", None),
        )  # fmt: skip
        self.end_button.pack(side="bottom", fill="x", padx=12, pady=12)
        tk.Label(root, text=t.activity, font=bold, anchor="w", padx=12).pack(fill="x")
        feed: Any = tk.Frame(root, padx=12)
        feed.pack(fill="both", expand=True)
        scroll: Any = tk.Scrollbar(feed)
        scroll.pack(side="right", fill="y")
        text: Any = tk.Text(feed, height=12, width=80, wrap="word", state="disabled",
                            yscrollcommand=scroll.set)  # fmt: skip
        w["feed"] = text
        text.pack(side="left", fill="both", expand=True)
        scroll.configure(command=text.yview)
        for kind, colour in _FEED_COLOURS.items():
            text.tag_configure(kind, foreground=colour)
        text.tag_configure("stamp", foreground="#707070")
        root.protocol("WM_DELETE_WINDOW", self._on_close)

        self._names = WidgetNames()
        self._names.name(self.end_button, "auxilio-end-session")
        self._names.name(self.accept_button, "auxilio-extension-accept")
        self._names.name(self.refuse_button, "auxilio-extension-refuse")
        root.after(0, self._poll)
        if self._on_ready is not None:
            root.after(0, self._on_ready, self)
        try:
            root.mainloop()
        finally:
            self._names.close()
        root.destroy()
        # Tk objects die in the thread that made them (see consent_window.ConsentWindow.run).
        self.root = self.end_button = self.accept_button = self.refuse_button = None
        self.revoke_buttons = {}
        self._widgets = {}
        root = base = big = bold = ext = feed = scroll = text = None
        gc.collect()

    def _poll(self) -> None:
        while True:
            try:
                kind, value = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "close":
                self.root.quit()
                return
            getattr(self, f"_do_{kind}")(value)
        self._tick()
        self.root.after(POLL_MS, self._poll)

    def _do_view(self, view: SessionView) -> None:
        import tkinter as tk

        t = self.texts
        self._view = view
        self._widgets["who"].configure(
            text=t.connected.format(technician=view.technician, organisation=view.organisation)
        )
        may = self._widgets["may"]
        if not self.revoke_buttons:
            tk.Label(may, text=t.may_do, anchor="w").grid(row=0, column=0, sticky="w")
            for row, capability in enumerate(view.consented, start=1):
                name = t.capability_names[capability]
                label = tk.Label(may, text=f"• {name}: {t.capability_plain[capability]}",
                                 anchor="w", justify="left", wraplength=WRAP - 160)  # fmt: skip
                label.grid(row=row, column=0, sticky="w", pady=2)
                button = tk.Button(
                    may, text=t.revoke.format(capability=name),
                    command=functools.partial(self._on_event, "revoke", capability),
                )  # fmt: skip
                button.grid(row=row, column=1, sticky="e", padx=(12, 0))
                self._names.name(button, f"auxilio-revoke-{capability}")
                self.revoke_buttons[capability] = button
                self._widgets[f"may_{capability}"] = label
            if not view.consented:
                tk.Label(may, text=t.may_do_nothing, anchor="w").grid(row=1, column=0)
        for capability, button in self.revoke_buttons.items():
            if capability not in view.allowed:
                name = t.capability_names[capability]
                button.configure(state="disabled", text=t.revoked.format(capability=name))
                self._widgets[f"may_{capability}"].configure(fg="#808080")
        self._tick()

    def _do_line(self, value: tuple[str, str, str]) -> None:
        stamp, line, kind = value
        text = self._widgets["feed"]
        text.configure(state="normal")
        text.insert("end", stamp + " ", ("stamp",))
        text.insert("end", line + "\n", (kind if kind in _FEED_COLOURS else "info",))
        excess = int(text.index("end-1c").split(".")[0]) - MAX_FEED_LINES
        if excess > 0:
            text.delete("1.0", f"{excess + 1}.0")
        text.configure(state="disabled")
        text.see("end")

    def _do_extension(self, value: tuple[str, str, int]) -> None:
        import time

        question, reason, seconds = value
        self._widgets["ext_question"].configure(text=question)
        self._widgets["ext_reason"].configure(
            text=self.texts.extension_reason.format(reason=reason)
        )
        self._extension_until = time.monotonic() + seconds
        self._widgets["extension"].pack(fill="x", padx=12, after=self._widgets["may"])
        self.root.deiconify()  # a question must be seen, even when the window was minimised
        self.root.lift()

    def _do_extension_closed(self, _: None) -> None:
        self._extension_until = None
        self._widgets["extension"].pack_forget()

    def _tick(self) -> None:
        import time

        view = self._view
        if view is not None:
            left = (view.ends_at - datetime.now(UTC)).total_seconds()
            self._widgets["left"].configure(text=self.texts.time_left.format(
                left=time_left_text(left), end=clock_text(view.ends_at)))  # fmt: skip
        if self._extension_until is not None:
            seconds = max(0, int(self._extension_until - time.monotonic()) + 1)
            self._widgets["ext_left"].configure(
                text=self.texts.extension_countdown.format(seconds=seconds)
            )

    def _answer(self, decision: ConsentDecision) -> None:
        self._do_extension_closed(None)
        self._on_event("extension", decision)

    def _on_close(self) -> None:
        from tkinter import messagebox

        if messagebox.askyesno(self.texts.close_title, self.texts.close_question, parent=self.root):
            self._on_event("end", None)
