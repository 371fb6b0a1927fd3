"""The person's questions during a session: one at a time, a deadline each, silence refuses;
answered typed (y / n) or in the window, logged, and all answered TIMED_OUT when the session
ends."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.capabilities.base import Question, SessionServices
from auxilio.agent.dispatch import CapabilityHandler
from auxilio.agent.feed import Feed, WindowFeed
from auxilio.agent.i18n import EN, ES, Texts
from auxilio.agent.questions import MAX_WAITING, Questions
from auxilio.agent.session_window import SessionWindow, into_loop
from auxilio.agent.state import ActivityLog, AgentState
from auxilio.protocol.app import AppMessage, DiagnosticsRequest
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.types import Capability, ConsentDecision
from tests.agent import xserver
from tests.agent.factories import make_grant
from tests.agent.sessionkit import Harness
from tests.agent.xserver import click, find_window, need_xdotool


def press(display: str, shown: str, key: str) -> None:
    """A real key press (XTEST) once the button ``shown`` is on screen, the pointer over it
    so that its window has the keyboard (no window manager in Xvfb)."""
    window = find_window(display, shown)
    env = {"DISPLAY": display}
    subprocess.run(["xdotool", "mousemove", "--window", window, "6", "6"], env=env, check=True,
                   timeout=30)  # fmt: skip
    subprocess.run(["xdotool", "key", key], env=env, check=True, timeout=30)


GRANTED, REFUSED, TIMED_OUT = (
    ConsentDecision.GRANTED, ConsentDecision.REFUSED, ConsentDecision.TIMED_OUT,
)  # fmt: skip
WAIT = 60.0
display = xserver.display


def zone_question(title: str = "Open your Documents?", seconds: int = 120) -> Question:
    return Question(kind="zone", title=title, lines=("Zone: documents", "Reason: the invoice"),
                    timeout_seconds=seconds)  # fmt: skip


class Asking:
    """Questions on a recorded console and a real log file; no grace after a question that
    follows another unless asked for (its own test)."""

    def __init__(self, tmp_path: Path, texts: Texts = EN, grace_seconds: float = 0) -> None:
        self.console = Console(record=True, width=200)
        self.feed = Feed(self.console, texts)
        self.log = ActivityLog(tmp_path / "session.jsonl")
        self.questions = Questions(feed=self.feed, log=self.log, grace_seconds=grace_seconds)

    def start(self, question: Question) -> asyncio.Task[ConsentDecision]:
        return asyncio.create_task(self.questions.ask(question))

    async def shown(self, text: str) -> None:
        for _ in range(500):
            if text in self.console.export_text(clear=False):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{text!r} was never shown")


async def test_a_typed_yes_grants_and_a_typed_no_refuses(tmp_path: Path) -> None:
    a = Asking(tmp_path)
    asked = a.start(zone_question())
    await a.shown("Type y (Allow) or n (Refuse) within 120 s")
    text = a.console.export_text(clear=False)
    assert "Open your Documents?" in text and "Reason: the invoice" in text
    assert not a.questions.answer_typed("maybe")  # not an answer: chat, a command...
    assert a.questions.answer_typed(" Y ")
    assert await asked is GRANTED
    refused = a.start(zone_question("Open your Pictures?"))
    await a.shown("Open your Pictures?")
    assert a.questions.answer_typed("n")
    assert await refused is REFUSED
    assert not a.questions.answer_typed("y")  # nothing is asked now: not an answer
    events = [(e["event"], e.get("decision"), e.get("by")) for e in a.log.events()]
    assert events == [
        ("question_asked", None, None), ("question_answered", "granted", "typed"),
        ("question_asked", None, None), ("question_answered", "refused", "typed"),
    ]  # fmt: skip


async def test_silence_is_a_refusal_timed_out(tmp_path: Path) -> None:
    a = Asking(tmp_path)
    assert await a.start(zone_question(seconds=1)) is TIMED_OUT
    assert "no answer in time (Refuse)" in a.console.export_text()
    assert a.log.events()[-1]["by"] == "silence"
    assert a.questions.pending == 0


async def test_questions_are_asked_one_at_a_time_in_order(tmp_path: Path) -> None:
    a = Asking(tmp_path)
    first, second = a.start(zone_question("First?")), a.start(zone_question("Second?"))
    await a.shown("First?")
    await asyncio.sleep(0.05)
    assert "Second?" not in a.console.export_text(clear=False)  # it waits its turn
    assert a.questions.pending == 2
    assert a.questions.answer_typed("n")
    assert await first is REFUSED
    await a.shown("Second?")
    assert not second.done()  # the "n" answered only the question on screen
    assert a.questions.answer_typed("y")
    assert await second is GRANTED


async def test_a_window_answer_counts_only_for_the_question_on_screen(tmp_path: Path) -> None:
    a = Asking(tmp_path)
    first, second = a.start(zone_question("First?")), a.start(zone_question("Second?"))
    await a.shown("First?")
    assert a.questions.answer(1, GRANTED)
    assert await first is GRANTED
    await a.shown("Second?")
    # A late click for question 1 (it is answered already) never answers question 2.
    assert not a.questions.answer(1, GRANTED)
    assert not a.questions.answer(2, TIMED_OUT)  # only the timer decides silence
    assert not second.done()
    assert a.questions.answer(2, REFUSED)
    assert await second is REFUSED


async def test_an_answer_just_as_the_next_question_appears_is_not_taken(tmp_path: Path) -> None:
    a = Asking(tmp_path, grace_seconds=0.3)
    first, second = a.start(zone_question("First?", seconds=1)), a.start(zone_question("Second?"))
    assert await first is TIMED_OUT  # the person was slow...
    await a.shown("Second?")
    assert a.questions.answer_typed("y")  # ...and their late "y" for the first one arrives now
    assert not a.questions.answer(2, GRANTED)  # as would a double click's second click
    assert "so it is not taken: read the question, then answer again" in a.console.export_text()
    assert not second.done() and a.questions.pending == 1
    await asyncio.sleep(0.4)  # past the grace the question takes answers
    assert a.questions.answer_typed("n")
    assert await second is REFUSED
    fresh = a.start(zone_question("Fresh?"))  # nothing was on screen before it: no grace
    await a.shown("Fresh?")
    assert a.questions.answer_typed("y")
    assert await fresh is GRANTED
    early = [e["by"] for e in a.log.events() if e["event"] == "question_early_answer"]
    assert early == ["typed", "window"]


async def test_the_end_of_the_session_answers_every_open_question_timed_out(
    tmp_path: Path,
) -> None:
    a = Asking(tmp_path)
    asked = [a.start(zone_question(f"Question {n}?")) for n in range(3)]
    await a.shown("Question 0?")
    a.questions.close()
    assert await asyncio.gather(*asked) == [TIMED_OUT] * 3
    assert await a.questions.ask(zone_question("Later?")) is TIMED_OUT  # never shown
    assert "Later?" not in a.console.export_text()
    ends = [e["by"] for e in a.log.events() if e["event"] == "question_answered"]
    assert ends == ["session_ended"] * 4


async def test_a_cancelled_asker_withdraws_its_question(tmp_path: Path) -> None:
    a = Asking(tmp_path)
    first, second = a.start(zone_question("First?")), a.start(zone_question("Second?"))
    await a.shown("First?")
    first.cancel()
    await a.shown("The question is withdrawn (no longer needed): First?")
    await a.shown("Second?")
    assert a.questions.answer_typed("y")
    assert await second is GRANTED
    assert first.cancelled()


async def test_past_the_queue_limit_questions_are_refused_unasked(tmp_path: Path) -> None:
    a = Asking(tmp_path)
    asked = [a.start(zone_question(f"Q{n}?")) for n in range(MAX_WAITING + 2)]
    await a.shown("Q0?")
    assert await asked[-1] is REFUSED  # one shown, MAX_WAITING waiting, this one refused
    assert "refused without asking you: " + f"Q{MAX_WAITING + 1}?" in a.console.export_text()
    assert a.questions.pending == MAX_WAITING + 1
    a.questions.close()
    await asyncio.gather(*asked)


async def test_default_labels_are_in_the_persons_language(tmp_path: Path) -> None:
    a = Asking(tmp_path, ES)
    asked = a.start(zone_question())
    await a.shown("Escriba s (Permitir) o n (Rechazar) en 120 s")
    assert a.questions.answer_typed("sí")
    assert await asked is GRANTED
    own = a.start(Question(kind="diagnostics", title="Send the report?", lines=(),
                           allow_label="Send", refuse_label="Don't send"))  # fmt: skip
    await a.shown("Escriba s (Send) o n (Don't send)")
    assert a.questions.answer_typed("n")
    assert await own is REFUSED


# -- through the session runner ----------------------------------------------------------------


class AskingHandler:
    """A diagnostics handler that asks the person before answering, as the real one does."""

    def __init__(self, services: SessionServices) -> None:
        self.services = services
        self.answers: list[ConsentDecision] = []

    async def handle(self, message: AppMessage) -> None:
        self.answers.append(await self.services.ask(Question(
            kind="diagnostics", title="Send the diagnostics report?", lines=("CPU: 4 cores",),
            allow_label="Send", refuse_label="Don't send")))  # fmt: skip

    async def close(self) -> None:
        pass


def asking_harness(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> tuple[Harness, list[AskingHandler]]:
    made: list[AskingHandler] = []

    def factory(services: SessionServices) -> CapabilityHandler:
        made.append(AskingHandler(services))
        return made[-1]

    capabilities = (Capability.CHAT, Capability.DIAGNOSTICS)
    _, grant = make_grant(server_key, state.device_public_key, technician_key,
                          capabilities=capabilities)  # fmt: skip
    h = Harness(state, grant, technician_key, dict.fromkeys(capabilities, GRANTED),
                server_key.public_key(), handlers={Capability.DIAGNOSTICS: factory})  # fmt: skip
    return h, made


async def test_the_session_keeps_running_while_a_handler_waits_for_the_answer(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h, made = asking_harness(state, server_key, technician_key)
    h.start()
    await h.activate(granted=("chat", "diagnostics"))
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=1))
    await h.eventually(lambda: "Type y (Send)" in h.console.export_text(clear=False))
    await h.lines.queue.put("y")  # the runner's loop takes it while the handler waits
    await h.eventually(lambda: bool(made) and made[0].answers == [GRANTED])
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=2))
    await h.eventually(lambda: h.runner.questions.pending == 1)
    await h.lines.queue.put("q")  # the session ends with the question open
    await h.finished()
    assert made[0].answers[0] is GRANTED
    answered = [(e["decision"], e["by"]) for e in h.log.events()
                if e["event"] == "question_answered"]  # fmt: skip
    assert answered == [("granted", "typed"), ("timed_out", "session_ended")]


async def test_revoking_while_the_person_is_asked_withdraws_the_question(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h, made = asking_harness(state, server_key, technician_key)
    h.start()
    await h.activate(granted=("chat", "diagnostics"))
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=1))
    await h.eventually(lambda: h.runner.questions.pending == 1)
    await h.lines.queue.put("r diagnostics")
    await h.eventually(lambda: h.runner.questions.pending == 0)
    assert "The question is withdrawn (no longer needed): Send the diagnostics report?" in (
        h.console.export_text(clear=False)
    )
    await h.lines.queue.put("y")  # nothing is asked any more: this is chat, not an answer
    await h.eventually(lambda: "You: y" in h.console.export_text(clear=False))
    assert made[0].answers == []
    await h.lines.queue.put("q")
    await h.finished()
    answered = [e["by"] for e in h.log.events() if e["event"] == "question_answered"]
    assert answered == ["withdrawn"]


async def test_a_question_is_answered_with_the_windows_button(
    display: str,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    need_xdotool()
    made: list[AskingHandler] = []

    def factory(services: SessionServices) -> CapabilityHandler:
        made.append(AskingHandler(services))
        return made[-1]

    capabilities = (Capability.CHAT, Capability.DIAGNOSTICS)
    _, grant = make_grant(server_key, state.device_public_key, technician_key,
                          capabilities=capabilities)  # fmt: skip
    holder: list[Harness] = []
    window = SessionWindow(on_event=into_loop(asyncio.get_running_loop(),
                                              lambda: holder[0].runner.post))  # fmt: skip
    console = Console(record=True, width=200)
    h = Harness(state, grant, technician_key, dict.fromkeys(capabilities, GRANTED),
                server_key.public_key(), feed=WindowFeed(console, window),
                handlers={Capability.DIAGNOSTICS: factory})  # fmt: skip
    holder.append(h)
    window.start()
    h.start()
    try:
        await h.activate(granted=("chat", "diagnostics"))
        await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=1))
        await asyncio.to_thread(click, display, "auxilio-question-allow")
        await h.eventually(lambda: bool(made) and made[0].answers == [GRANTED], WAIT)
        await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=2))
        await asyncio.to_thread(click, display, "auxilio-question-refuse")
        await h.eventually(lambda: made[0].answers == [GRANTED, REFUSED], WAIT)
        # The keyboard: a question that appears has the safe answer in focus; Enter refuses.
        await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=3))
        await asyncio.to_thread(press, display, "auxilio-question-refuse", "Return")
        await h.eventually(lambda: made[0].answers == [GRANTED, REFUSED, REFUSED], WAIT)
        await h.lines.queue.put("q")
        await h.finished(WAIT)
    finally:
        await asyncio.to_thread(window.close)
    answered = [(e["decision"], e["by"]) for e in h.log.events()
                if e["event"] == "question_answered"]  # fmt: skip
    assert answered == [("granted", "window"), ("refused", "window"), ("refused", "window")]
    assert "Your answer: Send." in console.export_text()
