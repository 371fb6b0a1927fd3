"""The consent prompt as a Tk window, for people who do not live in a terminal.

It shows exactly the text of the terminal prompt (the receipt hashes what was shown): the plain
part first, its header rows lined up in a grid, then the details (key, policy version, limits)
smaller at the bottom; one Allow / Refuse choice per capability with nothing preselected, and
the time left. "Confirm"
sends the answers once every capability has one. At the deadline the answers given stand, as
in the terminal, and the policy's default applies to the rest. "Refuse all", or closing the
window, refuses everything: nothing in the window was confirmed. Tk runs in a thread of its
own, so the agent's connection keeps working meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console

from auxilio.agent.consent import (
    Clock,
    ConsentResult,
    consent_deadline,
    render_prompt,
    utc_now,
)
from auxilio.agent.i18n import EN, Texts
from auxilio.crypto.grants import Grant
from auxilio.protocol.types import Capability, ConsentDecision

Ending = Literal["confirmed", "timed_out", "closed", "stopped"]
TICK_MS = 200
WRAP = 760


def window_available() -> bool:
    """A display to open a window on, and Tk to open it with."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import tkinter  # noqa: F401 -- only probing that the module exists
    except ImportError:
        return False
    return True


class WidgetNames:
    """Stable X window names on the buttons (``auxilio-end-session``), for automation and
    accessibility tools that find windows by name, such as ``xdotool search --name``.

    Tk names only its top-level windows, so the name is stored on the button's own X window
    through a second Xlib connection (setting a property on any window is ordinary X). Where
    there is no libX11 (Wayland only, or none installed) the buttons simply stay unnamed.
    """

    def __init__(self) -> None:
        self._x: Any = None
        self._display: Any = None
        try:
            import ctypes
            import ctypes.util

            library = ctypes.util.find_library("X11")
            if library is None:
                return
            x = ctypes.CDLL(library)
            x.XOpenDisplay.restype = ctypes.c_void_p
            x.XOpenDisplay.argtypes = [ctypes.c_char_p]
            x.XStoreName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_char_p]
            x.XFlush.argtypes = [ctypes.c_void_p]
            x.XCloseDisplay.argtypes = [ctypes.c_void_p]
            display = x.XOpenDisplay(None)
        except OSError:
            return
        if display:
            self._x, self._display = x, display

    def name(self, widget: Any, name: str) -> None:
        if self._display is None:
            return
        # The window must exist on the server before another connection names it, or the X
        # server answers BadWindow (and Xlib's default handler exits): winfo_id() makes Tk
        # create it, and a full update() ends with XSync on Tk's own connection.
        window = widget.winfo_id()
        widget.update()
        self._x.XStoreName(self._display, window, name.encode())
        self._x.XFlush(self._display)

    def close(self) -> None:
        if self._display is not None:
            self._x.XCloseDisplay(self._display)
            self._display = None


def split_details(text: str, texts: Texts) -> tuple[str, str]:
    """The prompt's plain part and its details section (shown smaller, last, never hidden:
    the receipt hashes all of it, so all of it is on the screen)."""
    marker = "\n" + texts.details + "\n"
    if marker not in text:
        return text, ""
    plain, details = text.split(marker, 1)
    return plain, texts.details + "\n" + details


@dataclass
class ConsentWindow:
    """One request's window; ``run`` blocks its thread until the person decides."""

    text: str
    capabilities: list[Capability]
    timeout_seconds: float
    texts: Texts = EN
    stop: threading.Event = field(default_factory=threading.Event)
    # Set by the Tk thread, read after run() returns.
    answers: dict[Capability, ConsentDecision] = field(default_factory=dict)
    ending: Ending = "stopped"
    # For tests: called in the Tk thread once the window is built, with the window itself.
    on_ready: Any = None
    # The Tk widgets (tkinter is imported lazily, in the Tk thread); None outside run().
    root: Any = None
    confirm: Any = None
    refuse_all: Any = None
    countdown: Any = None

    def run(self) -> tuple[dict[Capability, ConsentDecision], Ending]:
        import tkinter as tk
        from tkinter import font as tkfont

        t = self.texts
        deadline = time.monotonic() + self.timeout_seconds
        root: Any = tk.Tk()
        self.root = root
        root.title(t.consent_window_title)
        base: Any = tkfont.nametofont("TkDefaultFont")
        bold: Any = base.copy()
        bold.configure(weight="bold")
        small: Any = tkfont.nametofont("TkFixedFont").copy()
        small.configure(size=max(8, int(base.cget("size")) - 1))
        plain, details = split_details(self.text, t)
        self._plain_text(root, plain, bold)
        self.choices: dict[Capability, Any] = {}
        self.buttons: dict[tuple[Capability, str], Any] = {}
        answers = tk.Frame(root, padx=12, pady=6)
        answers.pack(fill="x")
        for row, capability in enumerate(self.capabilities):
            question = t.ask.format(capability=t.capability_names[capability]).split(" [")[0]
            tk.Label(answers, text=question, anchor="w", font=bold).grid(
                row=row, column=0, sticky="w", padx=(0, 12)
            )
            choice = tk.StringVar(root, value="")
            for column, (label, value) in enumerate(
                ((t.allow, "granted"), (t.refuse, "refused")), start=1
            ):
                # tristatevalue: Tk draws an empty value as half-selected; unanswered must look
                # unanswered.
                button = tk.Radiobutton(
                    answers, text=label, value=value, variable=choice, command=self._refresh,
                    tristatevalue="(tristate)",
                )  # fmt: skip
                button.grid(row=row, column=column, sticky="w", padx=4)
                self.buttons[(capability, value)] = button
            self.choices[capability] = choice
        self.countdown = tk.Label(root, padx=12, pady=4, anchor="w")
        self.countdown.pack(fill="x")
        buttons = tk.Frame(root, padx=12, pady=8)
        buttons.pack(fill="x")
        self.confirm = tk.Button(buttons, text=t.confirm, state="disabled", font=bold,
                                 command=lambda: self._finish("confirmed"))  # fmt: skip
        self.confirm.pack(side="left")
        self.refuse_all = tk.Button(
            buttons, text=t.refuse_all, command=lambda: self._finish("closed")
        )
        self.refuse_all.pack(side="left", padx=8)
        if details:
            tk.Label(root, text=details, justify="left", anchor="w", wraplength=WRAP,
                     font=small, fg="#555555", padx=12, pady=8).pack(fill="x")  # fmt: skip
        root.protocol("WM_DELETE_WINDOW", lambda: self._finish("closed"))

        names = WidgetNames()
        for (capability, value), button in self.buttons.items():
            names.name(button, f"auxilio-consent-{value}-{capability}")
        names.name(self.confirm, "auxilio-consent-confirm")
        names.name(self.refuse_all, "auxilio-consent-refuse-all")
        self._deadline = deadline
        self._tick()
        if self.on_ready is not None:
            root.after(0, self.on_ready, self)
        try:
            root.mainloop()
        finally:
            names.close()
        root.destroy()
        # Tk objects must die in the thread that made them: drop every reference here and
        # collect now, or the interpreter is torn down later from another thread and aborts.
        self.choices, self.buttons = {}, {}
        self.root = self.confirm = self.refuse_all = self.countdown = None
        root = base = bold = small = None
        gc.collect()
        return self.answers, self.ending

    def _plain_text(self, root: Any, plain: str, bold: Any) -> None:
        """The header rows (``Label:   value``) as a two-column grid, so the labels line up in
        a proportional font; every other paragraph as wrapped text."""
        import tkinter as tk

        blocks = plain.split("\n\n")
        tk.Label(root, text=blocks[0], font=bold, anchor="w", padx=12, pady=6).pack(fill="x")
        header = tk.Frame(root, padx=12)
        header.pack(fill="x")
        rows = blocks[1].splitlines() if len(blocks) > 1 else []
        for number, line in enumerate(rows):
            label, _, value = line.partition(":")
            tk.Label(header, text=label + ":", anchor="w", font=bold).grid(
                row=number, column=0, sticky="nw", padx=(0, 10)
            )
            tk.Label(header, text=value.strip(), anchor="w", justify="left",
                     wraplength=WRAP - 200).grid(row=number, column=1, sticky="w")  # fmt: skip
        for block in blocks[2:]:
            tk.Label(root, text=block, justify="left", anchor="w", wraplength=WRAP,
                     padx=12, pady=4).pack(fill="x")  # fmt: skip

    def _tick(self) -> None:
        left = self._deadline - time.monotonic()
        if self.stop.is_set():
            self._finish("stopped")
        elif left <= 0:
            self._finish("timed_out")
        else:
            self.countdown.configure(text=self.texts.countdown.format(seconds=int(left) + 1))
            self.root.after(TICK_MS, self._tick)

    def _refresh(self) -> None:
        complete = all(v.get() for v in self.choices.values())
        self.confirm.configure(state="normal" if complete else "disabled")

    def _finish(self, ending: Ending) -> None:
        self.ending = ending
        self.answers = {c: ConsentDecision(v.get()) for c, v in self.choices.items() if v.get()}
        self.root.quit()


async def ask_consent_in_window(
    console: Console,
    grant: Grant,
    *,
    clock: Clock = utc_now,
    window: type[ConsentWindow] = ConsentWindow,
    on_ready: Any = None,
    texts: Texts = EN,
) -> ConsentResult:
    """The same questions as ``ask_consent``, answered in a window; the same result."""
    deadline = consent_deadline(grant, clock())
    text = render_prompt(grant, deadline=deadline, texts=texts)
    seconds = max(1, math.ceil((deadline - clock()).total_seconds()))
    console.print(texts.window_asks, markup=False)
    dialog = window(text, [c.capability for c in grant.capabilities], seconds, texts=texts,
                    on_ready=on_ready)  # fmt: skip
    try:
        answers, ending = await asyncio.to_thread(dialog.run)
    except asyncio.CancelledError:
        dialog.stop.set()  # the request was withdrawn: close the window
        raise
    # Silence is a refusal, recorded as such: never a yes, whatever the grant says.
    on_timeout = ConsentDecision.TIMED_OUT
    decisions: dict[Capability, ConsentDecision] = {}
    for item in grant.capabilities:
        answer = answers.get(item.capability)
        if ending == "closed":
            answer = ConsentDecision.REFUSED  # "Refuse all" or the window closed unconfirmed
        elif answer is None:
            answer = on_timeout
        decisions[item.capability] = answer
        console.print(f"{item.capability}: {answer}", markup=False)
    return ConsentResult(
        prompt_text=text,
        decisions=decisions,
        decided_at=clock(),
        timeout_seconds=grant.terms.timeout_seconds,
    )
