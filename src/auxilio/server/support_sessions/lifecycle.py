"""Start and stop the support-session machinery with the app (called from its lifespan)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from auxilio.server.recordings.service import recordings_dir
from auxilio.server.relay.bus import create_bus
from auxilio.server.relay.hub import Hub
from auxilio.server.settings import Settings
from auxilio.server.support_sessions.runtime import SupportSessionRuntime
from auxilio.server.support_sessions.scheduler import Scheduler


async def start_support_sessions(
    app: FastAPI, *, settings: Settings, signing_key: Ed25519PrivateKey
) -> None:
    runtime = SupportSessionRuntime(sessionmaker=app.state.sessionmaker,
                                    hub=Hub(create_bus(settings.bus),
                                            recordings_dir=recordings_dir(settings)),
                                    settings=settings,
                                    signing_key=signing_key)
    app.state.support_sessions = runtime
    # Before serving: sessions this node left live in a previous run have lost their peers.
    await runtime.end_unfinished()
    scheduler = Scheduler(runtime)
    scheduler.start()
    app.state.support_session_scheduler = scheduler


async def stop_support_sessions(app: FastAPI) -> None:
    scheduler: Scheduler | None = getattr(app.state, "support_session_scheduler", None)
    if scheduler is not None:
        await scheduler.stop()
    runtime: SupportSessionRuntime | None = getattr(app.state, "support_sessions", None)
    if runtime is not None:
        runtime.hub.close_recordings()
        await runtime.hub.bus.close()
