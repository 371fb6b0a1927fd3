"""The session window (R2): visible for the whole support session, for people without a terminal.

It shows who is connected, what they may do in plain words, the time left in the device's own
time, the live feed, a "Stop" button per capability the person allowed and one large "End
session" button. It shows the one question the session asks the person at a time (an extension,
entering a personal-data zone, sending diagnostics, running a runbook: the question, its lines,
two buttons with its labels, a countdown; no answer is a refusal, decided by the runner's own
timer, ``agent.questions``). The buttons take the keyboard: Tab between them, Enter or Space
answers, Escape refuses, and the safe answer (refuse) has the focus when a question appears. It
can be minimised (a question brings it back); closing it asks whether to end the session, and
ends it if so: the window is never gone while the session runs.

Threads: Tk runs in a thread of its own (as the consent window does). The asyncio side talks to
it only through ``_inbox`` (a thread-safe queue the Tk thread drains every ``POLL_MS``); the
window talks back only through ``on_event(kind, value)``, called in the Tk thread, which the
caller routes into the runner's queue with ``loop.call_soon_threadsafe``. The window decides
nothing: the runner checks every event as it checks the person's typed commands.

Events: ``("end", None)``, ``("revoke", Capability)``, ``("question", (number,
ConsentDecision))``: the number is the question's own, so a click that arrives after that
question timed out can never answer the next one.
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


@dataclass(frozen=True, slots=True)
class QuestionView:
    """One question as the person sees it (terminal and window). ``number`` is unique in the
    session; ``how`` is the terminal's instruction (type y or n)."""

    number: int
    kind: str
    title: str
    lines: tuple[str, ...]
    allow: str
    refuse: str
    seconds: int
    how: str


# Stable X names of the question buttons (docs/support-sessions.md); an extension keeps the
# names it always had.
QUESTION_BUTTONS = ("auxilio-question-allow", "auxilio-question-refuse")
EXTENSION_BUTTONS = ("auxilio-extension-accept", "auxilio-extension-refuse")


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
        unattended: bool = False,
    ) -> None:
        """``unattended``: the owner's pre-authorised session (agent/daemon.py): the title says
        so, and a "Revoke access" button sends ``("revoke_access", None)``, which revokes the
        pre-authorisation itself and so ends the session."""
        self.texts = texts
        self.unattended = unattended
        self.revoke_access_button: Any = None
        self._on_event = on_event
        self._on_ready = on_ready
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sent: SessionView | None = None  # asyncio side: the last view sent
        self._view: SessionView | None = None  # Tk side: the view shown
        self._question_until: float | None = None
        self._question: int | None = None  # Tk side: the number of the question shown
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

    def ask(self, question: QuestionView) -> None:
        self._inbox.put(("question", question))

    def question_closed(self, number: int) -> None:
        self._inbox.put(("question_closed", number))

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
        ask: Any = tk.Frame(root, padx=12, pady=8, bg="#fff4ce")
        w["question"] = ask
        w["q_title"] = tk.Label(ask, font=bold, anchor="w", justify="left", bg="#fff4ce",
                                wraplength=WRAP)  # fmt: skip
        w["q_title"].pack(fill="x")
        w["q_lines"] = tk.Label(ask, anchor="w", justify="left", bg="#fff4ce", wraplength=WRAP)
        w["q_lines"].pack(fill="x")
        w["q_left"] = tk.Label(ask, anchor="w", bg="#fff4ce")
        w["q_left"].pack(fill="x")
        self.accept_button = tk.Button(ask, text=t.allow, command=lambda: self._answer(
            ConsentDecision.GRANTED))  # fmt: skip
        self.accept_button.pack(side="left")
        self.refuse_button = tk.Button(ask, text=t.refuse, command=lambda: self._answer(
            ConsentDecision.REFUSED))  # fmt: skip
        self.refuse_button.pack(side="left", padx=8)
        for button in (self.accept_button, self.refuse_button):
            button.bind("<Return>", lambda _, b=button: b.invoke())
        root.bind("<Escape>", lambda _: self._answer(ConsentDecision.REFUSED))
        self.end_button = tk.Button(
            root, text=t.end_session, font=big, bg="#b00020", fg="white",
            activebackground="#d0002a", activeforeground="white", padx=20, pady=12,
            command=lambda: self._on_event("end", None),
        )  # fmt: skip
        self.end_button.pack(side="bottom", fill="x", padx=12, pady=12)
        if self.unattended:
            self.revoke_access_button = tk.Button(
                root, text=t.revoke_access, font=bold, padx=16, pady=8,
                command=lambda: self._on_event("revoke_access", None),
            )  # fmt: skip
            self.revoke_access_button.pack(side="bottom", fill="x", padx=12)
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
        if self.revoke_access_button is not None:
            self._names.name(self.revoke_access_button, "auxilio-revoke-access")
        self._button_names: tuple[str, str] | None = None
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
        self.revoke_access_button = None
        self.revoke_buttons = {}
        self._widgets = {}
        root = base = big = bold = ask = feed = scroll = text = None
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
        who = t.unattended_connected if self.unattended else t.connected
        self._widgets["who"].configure(
            text=who.format(technician=view.technician, organisation=view.organisation)
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
                if capability is Capability.SCREEN:
                    # Pauses or resumes a running screen view (agent/capabilities/screen.py).
                    pause = tk.Button(
                        may,
                        text=t.screen.pause_button,
                        command=lambda: self._on_event("screen_pause", None),
                    )
                    pause.grid(row=row, column=2, sticky="e", padx=(8, 0))
                    self._names.name(pause, "auxilio-pause-screen")
                    self._widgets["pause_screen"] = pause
                self._widgets[f"may_{capability}"] = label
            if not view.consented:
                tk.Label(may, text=t.may_do_nothing, anchor="w").grid(row=1, column=0)
        for capability, button in self.revoke_buttons.items():
            if capability not in view.allowed:
                name = t.capability_names[capability]
                button.configure(state="disabled", text=t.revoked.format(capability=name))
                if capability is Capability.SCREEN and "pause_screen" in self._widgets:
                    self._widgets["pause_screen"].configure(state="disabled")
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

    def _do_question(self, question: QuestionView) -> None:
        import time

        w = self._widgets
        self._question = question.number
        w["q_title"].configure(text=question.title)
        w["q_lines"].configure(text="\n".join(question.lines))
        self.accept_button.configure(text=question.allow)
        self.refuse_button.configure(text=question.refuse)
        names = EXTENSION_BUTTONS if question.kind == "extension" else QUESTION_BUTTONS
        w["question"].pack(fill="x", padx=12, after=w["may"])
        self.root.deiconify()  # a question must be seen, even when the window was minimised
        self.root.lift()
        if names != self._button_names:
            self._button_names = names
            self._names.name(self.accept_button, names[0])
            self._names.name(self.refuse_button, names[1])
        self._question_until = time.monotonic() + question.seconds
        self.refuse_button.focus_set()  # Enter on a question that just appeared refuses it

    def _do_question_closed(self, number: int | None) -> None:
        if number is not None and number != self._question:
            return  # an older question's close; the one shown now stays
        self._question = self._question_until = None
        self._widgets["question"].pack_forget()

    def _tick(self) -> None:
        import time

        view = self._view
        if view is not None:
            left = (view.ends_at - datetime.now(UTC)).total_seconds()
            self._widgets["left"].configure(text=self.texts.time_left.format(
                left=time_left_text(left), end=clock_text(view.ends_at)))  # fmt: skip
        if self._question_until is not None:
            seconds = max(0, int(self._question_until - time.monotonic()) + 1)
            self._widgets["q_left"].configure(text=self.texts.countdown.format(seconds=seconds))

    def _answer(self, decision: ConsentDecision) -> None:
        # The panel stays until the runner closes the question: an answer it does not take
        # (too soon after the question appeared) leaves the question on screen.
        if self._question is not None:  # None: Escape with nothing asked
            self._on_event("question", (self._question, decision))

    def _on_close(self) -> None:
        from tkinter import messagebox

        if messagebox.askyesno(self.texts.close_title, self.texts.close_question, parent=self.root):
            self._on_event("end", None)
