"""``auxilio agent join``: connect, present the join code, verify the offer, ask, run, report.

Order matters for safety: the grant is verified before the prompt is shown (a forged or foreign
grant never reaches the person), and the receipt is signed and stored before it is sent, so the
person keeps evidence of what they decided even if the connection drops right after.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console

from auxilio.agent.connection import (
    AgentConnection,
    ConnectionLost,
    Link,
    new_id,
    server_address,
)
from auxilio.agent.consent import ask_consent, sign_consent, utc_now
from auxilio.agent.consent_window import ask_consent_in_window, window_available
from auxilio.agent.errors import AgentError
from auxilio.agent.feed import Feed, WindowFeed
from auxilio.agent.grants import check_offer
from auxilio.agent.i18n import texts_for
from auxilio.agent.report import build_report, render_report, render_server_report
from auxilio.agent.session import SupportSessionRunner
from auxilio.agent.session_window import SessionWindow, into_loop
from auxilio.agent.state import ActivityLog, AgentState
from auxilio.agent.survey import invite_text
from auxilio.agent.userinput import LineInput
from auxilio.crypto.grants import Grant
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.frames import (
    ConsentDecisionMessage,
    EndReason,
    ErrorMessage,
    Party,
    SessionEnd,
    SessionJoin,
    SessionOffer,
)

OFFER_TIMEOUT_SECONDS = 30.0


async def _wait_offer(connection: AgentConnection) -> SessionOffer:
    while True:
        try:
            message = await asyncio.wait_for(connection.receive(), OFFER_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            raise AgentError("server.no_offer", "the server did not answer the join code") from exc
        except ConnectionLost as exc:
            raise AgentError("server.closed", "the server closed the connection") from exc
        except ProtocolError as exc:
            raise AgentError(
                exc.code, f"the server sent an invalid message: {exc.message}"
            ) from exc
        if isinstance(message, ErrorMessage):
            raise AgentError(message.code, message.message)
        if isinstance(message, SessionOffer):
            return message


async def join(
    *,
    code: str,
    server: str,
    state_dir: Path,
    console: Console,
    ca_file: str | None = None,
    window: bool = False,
    lang: str | None = None,
) -> int:
    """Run one attended support session; the process exit code. ``window``: ask for consent
    in a Tk window and show the session window when a display is available (the terminal
    prompt and feed otherwise). ``lang``: ``en`` or ``es``; the device's locale when None."""
    address = server_address(server)
    state = AgentState(state_dir)
    texts = texts_for(lang)
    feed = Feed(console, texts)
    lines = LineInput()
    main_task = asyncio.current_task()
    consenting = False

    def on_interrupt() -> None:
        # Ctrl-C refuses (during the prompt) or ends (during the session); before either, it
        # simply stops the agent.
        if consenting or runner_started:
            lines.interrupt()
        elif main_task is not None:
            main_task.cancel()

    runner_started = False
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    connection = AgentConnection(address, state, notify=feed.info, ca_file=ca_file)
    try:
        feed.info(f"Connecting to {address.websocket_url} ...")
        pinned = await connection.open()
        await connection.send(SessionJoin(id=new_id(), join_code=code.strip().upper()))
        offer = await _wait_offer(connection)
        grant = await verify_offer(connection, offer, state=state, server_key=pinned.public_key,
                                   device_id=pinned.device_id)  # fmt: skip
        state.remember_device_id(address.origin, grant.device_id)
        log = log_offer(state, grant, server=address.origin)
        consenting = True
        windowed = window and window_available()
        if windowed:
            asking = ask_consent_in_window(console, grant, texts=texts)
        else:
            asking = ask_consent(console, lines, grant, texts=texts)
        consent_task = asyncio.create_task(asking)
        early_end = await _watch_during_consent(connection, consent_task)
        consenting = False
        if early_end is not None:
            feed.warning(texts.feed_ended_emergency if early_end.reason == EndReason.EMERGENCY
                         else f"The request was withdrawn ({early_end.reason}).")
            log.append("ended", ended_by=str(early_end.ended_by), reason=str(early_end.reason),
                       detail=early_end.detail)  # fmt: skip
            render_report(console, build_report(log.events()))
            return 0
        result = consent_task.result()
        signed, receipt = sign_consent(state.device_key, grant, result)
        path = state.save_receipt(
            signed,
            receipt,
            technician_name=grant.technician_name,
            organisation_name=grant.organisation_name,
            server=address.origin,
        )
        log.append("consent", decisions={str(k): str(v) for k, v in result.decisions.items()})
        feed.info(f"Consent receipt signed and kept in {path}")
        await connection.send(
            ConsentDecisionMessage(
                id=new_id(), support_session_id=grant.support_session_id, receipt=signed
            )
        )
        session_window: SessionWindow | None = None
        session_feed = feed
        if windowed:
            events = into_loop(loop, lambda: runner.post)
            session_window = SessionWindow(on_event=events, texts=texts)
            session_feed = WindowFeed(console, session_window)
        runner = SupportSessionRunner(
            link=connection,
            feed=session_feed,
            lines=lines,
            log=log,
            device_key=state.device_key,
            server_key=pinned.public_key,
            grant=grant,
            receipt=receipt,
            server_url=address.origin,  # diagnostics check the way to it
        )
        runner_started = True
        if session_window is not None:
            session_window.start()
        try:
            ended = await runner.run()
        finally:
            if session_window is not None:
                await asyncio.to_thread(session_window.close)
        show_report(console, runner, log)
        return 1 if ended.reason == EndReason.PROTOCOL_ERROR and ended.ended_by == "agent" else 0
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await connection.close()


async def verify_offer(
    link: Link, offer: SessionOffer, *, state: AgentState, server_key: Ed25519PublicKey,
    device_id: str | None,
) -> Grant:
    """The offer's grant, checked (``grants.check_offer``) and never seen before; otherwise the
    offer is ended (``session.end`` protocol_error naming the code) and ``AgentError`` raised.
    Shared by the attended join and the unattended service (agent/daemon.py)."""
    try:
        now = utc_now()
        grant = check_offer(offer, server_key=server_key, device_key=state.device_public_key,
                            device_id=device_id, now=now)  # fmt: skip
        if not state.remember_grant(grant.nonce, until=grant.not_after, now=now):
            raise AgentError(
                "offer.replayed", "this offer was already shown once; it is never shown again"
            )
    except AgentError as exc:
        await link.send(
            SessionEnd(
                id=new_id(),
                support_session_id=offer.support_session_id,
                ended_by=Party.AGENT,
                reason=EndReason.PROTOCOL_ERROR,
                detail=exc.code,
            )
        )
        raise
    return grant


def log_offer(state: AgentState, grant: Grant, *, server: str, **extra: object) -> ActivityLog:
    """The session's own log, opened with what was offered (the report's first lines)."""
    log = state.session_log(grant.support_session_id)
    log.append(
        "offered",
        support_session_id=grant.support_session_id,
        technician_name=grant.technician_name,
        organisation_name=grant.organisation_name,
        technician_fingerprint=grant.technician_key_fingerprint,
        recorded=grant.recorded,
        capabilities=[str(item.capability) for item in grant.capabilities],
        not_after=grant.not_after.isoformat(),
        server=server,
        **extra,
    )
    return log


def show_report(console: Console, runner: SupportSessionRunner, log: ActivityLog) -> None:
    """After the session: the server's signed report checked against the device's own log, or
    the device's own log alone when the server's did not arrive."""
    own = build_report(log.events())
    if runner.server_report is not None:
        log.append("report", report=runner.server_report.model_dump(mode="json"))
        render_server_report(console, runner.server_report, own)
    else:
        console.print("The server's report did not arrive; this is the device's own log.",
                      markup=False)  # fmt: skip
        render_report(console, own)
    if runner.survey is not None:  # verified by the runner; the link stays under the report
        console.print(invite_text(runner.survey, runner.server_url), markup=False)


async def _watch_during_consent(
    connection: AgentConnection, consent: asyncio.Task[object]
) -> SessionEnd | None:
    """While the person decides, the technician may withdraw the request: a ``session.end`` then
    closes the prompt. Anything else the server sends before the decision is not actionable."""
    while not consent.done():
        receive = asyncio.create_task(connection.receive())
        done, _ = await asyncio.wait({receive, consent}, return_when=asyncio.FIRST_COMPLETED)
        if receive not in done:
            receive.cancel()
            break
        try:
            message = receive.result()
        except ProtocolError:
            continue
        except ConnectionLost:
            await connection.reconnect()
            continue
        if isinstance(message, SessionEnd):
            consent.cancel()
            return message
    return None
