"""What only the person can decide during a session, asked one question at a time.

Entering a personal-data zone, sending a diagnostics report, running a runbook, extending the
session: each is a question with a deadline. Questions wait in a FIFO and are shown one at a
time, in the terminal (typed y / n, as in the consent prompt) and in the session window (two
buttons with the question's own labels); the answer is GRANTED, REFUSED or TIMED_OUT. Silence
is a refusal, always: the deadline is the runner's own timer (the event loop's clock, which a
wall-clock change cannot move), started when the question is shown, not when it was queued.

Why one at a time: a "y" typed for one question must never answer another, so only the question
on screen takes answers; the window's answer names the question's number, so a click that
arrives after its question timed out is dropped rather than answering the next one. A technician
cannot bury the person in questions either: past ``MAX_WAITING`` waiting, more are refused
without being asked. A question shown the moment the one before it closed (answered or timed
out) takes no answer for its first ``grace_seconds``: a "y" meant for the question that just
went, or the second click of a double click, must not grant the next one. When the session
ends every question still open answers TIMED_OUT at once; a handler that stops waiting (its
capability revoked) withdraws its question.

Every question and every answer is written to the session's ActivityLog (the person's report).
What a question shows goes through ``feed.one_line`` (no escape sequences, no line breaks).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auxilio.agent.capabilities.base import Question
from auxilio.agent.connection import new_id
from auxilio.agent.consent import NO_WORDS, YES_WORDS, Clock, clock_text
from auxilio.agent.errors import AgentError
from auxilio.agent.feed import Feed, one_line
from auxilio.agent.grants import check_extension
from auxilio.agent.session_window import QuestionView
from auxilio.agent.state import ActivityLog
from auxilio.crypto.grants import Grant
from auxilio.crypto.receipts import sign_extension_receipt
from auxilio.protocol.frames import ControlMessage, SessionExtendAnswer, SessionExtendDecision
from auxilio.protocol.types import ConsentDecision

# Questions waiting behind the one shown; more are refused unasked (and logged).
MAX_WAITING = 8
# A question that follows another at once takes no answer for this long.
GRACE_SECONDS = 1.0
# The labels a handler leaves at their defaults are shown in the person's language.
_DEFAULTS = Question(kind="zone", title="", lines=())
OnAnswer = Callable[[ConsentDecision], None]


@dataclass(slots=True, eq=False)  # each question is itself: compared by identity
class _Open:
    view: QuestionView
    on_answer: OnAnswer
    timer: asyncio.TimerHandle | None = None
    # Set when shown: the loop's time, and whether it followed another question at once.
    shown_at: float = 0.0
    chained: bool = False


class Questions:
    """The session's questions to the person. ``ask`` is ``SessionServices.ask``; the runner
    passes the person's typed lines to ``answer_typed`` and the window's answers to ``answer``,
    and calls ``close`` when the session ends."""

    def __init__(
        self, *, feed: Feed, log: ActivityLog, grace_seconds: float = GRACE_SECONDS
    ) -> None:
        self._feed = feed
        self._log = log
        self._grace = grace_seconds
        self._waiting: deque[_Open] = deque()
        self._shown: _Open | None = None
        self._numbers = 0
        self._closed = False

    @property
    def pending(self) -> int:
        """Questions open now: the one shown and those waiting behind it."""
        return len(self._waiting) + (self._shown is not None)

    async def ask(self, question: Question) -> ConsentDecision:
        """Ask ``question`` and wait for the answer. A caller cancelled while waiting (its
        capability revoked, the session over) withdraws the question."""
        texts = self._feed.texts
        allow, refuse = question.allow_label, question.refuse_label
        if allow == _DEFAULTS.allow_label:
            allow = texts.allow
        if refuse == _DEFAULTS.refuse_label:
            refuse = texts.refuse
        seconds = max(1, question.timeout_seconds)
        how = texts.question_how.format(allow=allow, refuse=refuse, seconds=seconds)
        answered: asyncio.Future[ConsentDecision] = asyncio.get_running_loop().create_future()

        def deliver(decision: ConsentDecision) -> None:
            if not answered.done():
                answered.set_result(decision)

        number = self.put(question.kind, question.title, question.lines, allow=allow,
                          refuse=refuse, seconds=seconds, how=how, on_answer=deliver)  # fmt: skip
        try:
            return await answered
        except asyncio.CancelledError:
            self.withdraw(number)
            raise

    def put(
        self,
        kind: str,
        title: str,
        lines: tuple[str, ...],
        *,
        allow: str,
        refuse: str,
        seconds: int,
        how: str,
        on_answer: OnAnswer,
    ) -> int:
        """Queue a question; ``on_answer`` is called once, in the event loop, with the answer.
        Returns the question's number."""
        self._numbers += 1
        # Printable before it is logged, shown in the terminal or sent to the window: a title
        # or line may carry the technician's words (a reason, a path).
        title, allow, refuse, how = (one_line(t) for t in (title, allow, refuse, how))
        shown = tuple(one_line(line) for line in lines)
        view = QuestionView(self._numbers, kind, title, shown, allow, refuse, seconds, how)
        item = _Open(view, on_answer)
        self._log.append("question_asked", number=view.number, kind=kind, title=title,
                         lines=list(view.lines), seconds=seconds)  # fmt: skip
        if self._closed:
            self._resolve(item, ConsentDecision.TIMED_OUT, by="session_ended")
        elif len(self._waiting) >= MAX_WAITING:
            self._feed.alert(self._feed.texts.question_too_many.format(title=title))
            self._resolve(item, ConsentDecision.REFUSED, by="too_many")
        else:
            self._waiting.append(item)
            self._show_next()
        return view.number

    def answer_typed(self, line: str) -> bool:
        """A line the person typed: ``True`` when it answered the question on screen."""
        word = line.strip().lower()
        if self._shown is None or word not in YES_WORDS | NO_WORDS:
            return False
        if not self._too_soon(self._shown, by="typed"):
            decision = ConsentDecision.GRANTED if word in YES_WORDS else ConsentDecision.REFUSED
            self._resolve(self._shown, decision, by="typed")
        return True  # a y / n while a question is shown is never chat

    def answer(self, number: int, decision: ConsentDecision, *, by: str = "window") -> bool:
        """The answer to question ``number``; ``False`` (and nothing done) when that question
        is no longer the one on screen."""
        if decision is ConsentDecision.TIMED_OUT:
            return False  # only the timer decides silence
        if self._shown is None or self._shown.view.number != number:
            self._log.append("ignored", what=f"an answer to question {number}, not on screen")
            return False
        if self._too_soon(self._shown, by=by):
            return False
        self._resolve(self._shown, decision, by=by)
        return True

    def withdraw(self, number: int) -> None:
        """The asker no longer waits: the question goes (REFUSED to its callback)."""
        for item in (self._shown, *self._waiting):
            if item is not None and item.view.number == number:
                self._feed.info(self._feed.texts.question_withdrawn.format(title=item.view.title))
                self._resolve(item, ConsentDecision.REFUSED, by="withdrawn")
                return

    def close(self) -> None:
        """The session ended: every open question answers TIMED_OUT now, and later ones at
        once, unasked."""
        self._closed = True
        for item in (self._shown, *self._waiting):
            if item is not None:
                self._resolve(item, ConsentDecision.TIMED_OUT, by="session_ended")

    # -- inside -----------------------------------------------------------------------------------

    def _too_soon(self, item: _Open, *, by: str) -> bool:
        loop = asyncio.get_running_loop()
        if not item.chained or loop.time() - item.shown_at >= self._grace:
            return False
        self._feed.info(self._feed.texts.question_too_soon)
        self._log.append("question_early_answer", number=item.view.number, by=by)
        return True

    def _show_next(self, *, chained: bool = False) -> None:
        if self._shown is not None or not self._waiting or self._closed:
            return
        item = self._shown = self._waiting.popleft()
        item.chained = chained
        item.shown_at = asyncio.get_running_loop().time()
        view = item.view
        self._feed.warning(view.title)
        for line in view.lines:
            self._feed.info(line)
        self._feed.info(view.how)
        self._feed.question_asked(view)
        loop = asyncio.get_running_loop()
        item.timer = loop.call_later(view.seconds, self._expire, view.number)

    def _expire(self, number: int) -> None:
        if self._shown is not None and self._shown.view.number == number:
            self._resolve(self._shown, ConsentDecision.TIMED_OUT, by="silence")

    def _resolve(self, item: _Open, decision: ConsentDecision, *, by: str) -> None:
        view = item.view
        if item.timer is not None:
            item.timer.cancel()
        if item is self._shown:
            self._shown = None
            self._feed.question_closed(view.number)
            texts = self._feed.texts
            label = {ConsentDecision.GRANTED: view.allow, ConsentDecision.REFUSED: view.refuse}
            answer = label.get(decision) or texts.question_silence.format(refuse=view.refuse)
            if by != "withdrawn":
                self._feed.info(texts.question_answered.format(answer=answer))
        elif item in self._waiting:
            self._waiting.remove(item)
        self._log.append("question_answered", number=view.number, kind=view.kind,
                         decision=str(decision), by=by)  # fmt: skip
        item.on_answer(decision)
        self._show_next(chained=True)


class Extensions:
    """A longer session the server approved: checked against the current grant, asked like any
    other question, answered with an extension receipt the device signs. Until the person says
    yes the session's end does not move; silence keeps it where it was."""

    def __init__(
        self,
        *,
        questions: Questions,
        feed: Feed,
        log: ActivityLog,
        device_key: Ed25519PrivateKey,
        server_key: Ed25519PublicKey,
        clock: Clock,
        send: Callable[[ControlMessage], Awaitable[None]],
        answered: Callable[[Grant, ConsentDecision], None],
    ) -> None:
        self._questions = questions
        self._feed = feed
        self._log = log
        self._device_key = device_key
        self._server_key = server_key
        self._clock = clock
        self._send = send
        # ``answered`` queues the answer into the runner's loop, which applies it (one task
        # changes the session's grant, as with every other state change).
        self._answered = answered
        self._pending: Grant | None = None

    def received(self, message: SessionExtendDecision, current: Grant) -> None:
        """The server's decision on an extension: a refusal is told; an approval is checked
        (signed by the pinned key, chained to ``current``, only later) and asked."""
        if not message.approved:
            self._feed.info(f"An extension was refused ({message.reason or 'no reason given'}).")
            return
        if self._pending is not None:
            self._log.append("ignored", what="an extension while another awaits your answer")
            return
        try:
            new = check_extension(
                current,
                message.grant,
                server_key=self._server_key,
                device_key=self._device_key.public_key(),
                now=self._clock(),
            )
        except AgentError as exc:
            self._feed.alert(f"Extension NOT applied: the new grant was refused ({exc.code}).")
            self._log.append("extension_refused", code=exc.code)
            return
        note = new.extension
        assert note is not None  # noqa: S101 -- check_extension refuses a grant without one
        self._pending = new
        self._log.append("extension_asked", not_after=new.not_after.isoformat(), reason=note.reason)
        texts = self._feed.texts
        self._questions.put(
            "extension",
            texts.extension_question.format(technician=new.technician_name,
                                            end=clock_text(new.not_after),
                                            current=clock_text(current.not_after)),
            (texts.extension_reason.format(reason=note.reason),),
            allow=texts.extension_accept,
            refuse=texts.extension_refuse,
            seconds=note.answer_within_seconds,
            how=texts.feed_extension_how.format(seconds=note.answer_within_seconds),
            on_answer=lambda decision: self._answered(new, decision),
        )  # fmt: skip

    async def answer(self, new: Grant, decision: ConsentDecision, current: Grant) -> bool:
        """Sign and send the person's answer to ``new``; ``True`` when the runner is to apply
        it (the person accepted)."""
        if self._pending is not new:
            return False
        self._pending = None
        note = new.extension
        assert note is not None  # noqa: S101 -- only checked extensions are pending
        signed = sign_extension_receipt(
            self._device_key,
            support_session_id=new.support_session_id,
            device_id=new.device_id,
            grant_nonce=new.nonce,
            new_not_after=new.not_after,
            reason=note.reason,
            decision=decision,
            decided_at=self._clock(),
        )
        granted = decision is ConsentDecision.GRANTED
        texts = self._feed.texts
        if granted:
            self._feed.warning(texts.feed_extended.format(end=clock_text(new.not_after)))
        else:
            ends = clock_text(current.not_after)
            self._feed.info(texts.feed_extension_kept.format(decision=decision, end=ends))
        self._log.append(
            "extension_answered",
            decision=str(decision),
            not_after=(new if granted else current).not_after.isoformat(),
            reason=note.reason,
        )
        await self._send(
            SessionExtendAnswer(
                id=new_id(), support_session_id=new.support_session_id, receipt=signed
            )
        )
        return granted
