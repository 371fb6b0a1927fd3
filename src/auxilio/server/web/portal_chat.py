"""The end user's chat-only support session in the browser (issue 10): ``GET /portal/chat``.

The page is the device. Its script (static/js/device-chat.js) joins with the code over
``/ws/agent`` as ``auxilio agent join`` does: its own Ed25519 device key, kept non-extractable in
the browser, answers the challenge; it announces ``chat`` and nothing else, so the server offers
such a device nothing else (``capability.unavailable`` before anyone is asked); it verifies the
signed offer, signs the receipt and runs the device side of the E2E handshake itself. The server
learns nothing here that it does not learn from any agent, and relays the chat sealed.

The page carries the server key and its fingerprint (``chat-data``): the script refuses a
``server.hello`` that presents another fingerprint and verifies the grant and the report with
that key. The code is checked for its shape only, as on the join page: whether it exists is
answered by the agent WebSocket, under its rate limit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

import auxilio
from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.policy.roles import Permission
from auxilio.server.context import Actor
from auxilio.server.support_sessions.runtime import SupportSessionRuntime
from auxilio.server.web.pages import register_pages, render, translator, web_require
from auxilio.server.web.portal import normalise_code

router = APIRouter(include_in_schema=False)

Reader = Annotated[Actor, web_require(Permission.TICKET_READ)]


def chat_data(request: Request, code: str | None) -> dict[str, Any]:
    """What device-chat.js needs: the pinned server key, the code if one was given, the
    version it announces."""
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    public = runtime.signing_key.public_key()
    return {
        "join_code": code,
        "server_public_key": encode_public_key(public),
        "server_fingerprint": fingerprint(public),
        "agent_version": f"auxilio-web/{auxilio.__version__}",
    }


@router.get("/portal/chat", response_class=HTMLResponse)
async def chat_page(request: Request, actor: Reader, code: str | None = None) -> HTMLResponse:
    typed = (code or "")[:64]
    normal = normalise_code(typed) if typed else None
    _ = translator(request)
    error = (
        ""
        if not typed or normal is not None
        else _(
            "That does not look like a join code. A code has nine letters and digits, such as "
            "ACD-EFH-JKM."
        )
    )
    return render(
        request,
        "web/portal/chat.html",
        status_code=400 if error else 200,
        chat=chat_data(request, normal),
        typed=typed,
        error=error,
        headers={"x-robots-tag": "noindex"},
    )


register_pages(router)
