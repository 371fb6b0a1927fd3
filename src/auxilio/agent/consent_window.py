"""The consent prompt as a Tk window, for people who do not live in a terminal.

It shows exactly the text of the terminal prompt (the receipt hashes what was shown), one
Allow / Refuse choice per capability with nothing preselected, and the time left. "Confirm"
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
from auxilio.crypto.grants import Grant
from auxilio.protocol.types import Capability, ConsentDecision

Ending = Literal["confirmed", "timed_out", "closed", "stopped"]
TICK_MS = 200


def window_available() -> bool:
    """A display to open a window on, and Tk to open it with."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import tkinter  # noqa: F401 -- only probing that the module exists
    except ImportError:
        return False
    return True


@dataclass
class ConsentWindow:
    """One request's window; ``run`` blocks its thread until the person decides."""

    text: str
    capabilities: list[Capability]
    timeout_seconds: float
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

        deadline = time.monotonic() + self.timeout_seconds
        root: Any = tk.Tk()
        self.root = root
        root.title("Auxilio: remote support request")
        tk.Label(root, text=self.text, justify="left", anchor="w", wraplength=720,
                 padx=12, pady=8).pack(fill="x")  # fmt: skip
        self.choices: dict[Capability, Any] = {}
        self.buttons: dict[tuple[Capability, str], Any] = {}
        for capability in self.capabilities:
            row = tk.Frame(root, padx=12, pady=2)
            row.pack(fill="x")
            tk.Label(row, text=f"Allow {capability}?", width=28, anchor="w").pack(side="left")
            choice = tk.StringVar(root, value="")
            for label, value in (("Allow", "granted"), ("Refuse", "refused")):
                # tristatevalue: Tk draws an empty value as half-selected; unanswered must look
                # unanswered.
                button = tk.Radiobutton(
                    row, text=label, value=value, variable=choice, command=self._refresh,
                    tristatevalue="(tristate)",
                )  # fmt: skip
                button.pack(side="left")
                self.buttons[(capability, value)] = button
            self.choices[capability] = choice
        self.countdown = tk.Label(root, padx=12, pady=6, anchor="w")
        self.countdown.pack(fill="x")
        buttons = tk.Frame(root, padx=12, pady=8)
        buttons.pack(fill="x")
        self.confirm = tk.Button(buttons, text="Confirm", state="disabled",
                                 command=lambda: self._finish("confirmed"))  # fmt: skip
        self.confirm.pack(side="left")
        self.refuse_all = tk.Button(
            buttons, text="Refuse all", command=lambda: self._finish("closed")
        )
        self.refuse_all.pack(side="left", padx=8)
        root.protocol("WM_DELETE_WINDOW", lambda: self._finish("closed"))

        self._deadline = deadline
        self._tick()
        if self.on_ready is not None:
            root.after(0, self.on_ready, self)
        root.mainloop()
        root.destroy()
        # Tk objects must die in the thread that made them: drop every reference here and
        # collect now, or the interpreter is torn down later from another thread and aborts.
        self.choices, self.buttons = {}, {}
        self.root = self.confirm = self.refuse_all = self.countdown = None
        root = None
        gc.collect()
        return self.answers, self.ending

    def _tick(self) -> None:
        left = self._deadline - time.monotonic()
        if self.stop.is_set():
            self._finish("stopped")
        elif left <= 0:
            self._finish("timed_out")
        else:
            self.countdown.configure(text=f"{int(left) + 1} s left; no answer means the default.")
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
) -> ConsentResult:
    """The same questions as ``ask_consent``, answered in a window; the same result."""
    deadline = consent_deadline(grant, clock())
    text = render_prompt(grant, deadline=deadline)
    seconds = max(1, math.ceil((deadline - clock()).total_seconds()))
    console.print("A window asks for your consent.", markup=False)
    dialog = window(text, [c.capability for c in grant.capabilities], seconds,
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
