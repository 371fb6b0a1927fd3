"""A WebSocket man in the middle between a real agent and a real server, for the attack tests.

    python -m tests.e2e.wsproxy --port P --upstream ws://127.0.0.1:S --attack NAME
                                [--server-key PEM] [--state FILE]

It accepts the agent's connection on ``/ws/agent``, opens its own to the server, and passes every
frame through, except what the chosen attack changes in the server's control messages. With
``--server-key`` it plays a compromised server that holds the signing key. It prints ``READY``
once it listens, and one ``TAMPERED <what>`` line each time it changed a frame.

Attacks (each one an observation of the adversarial review, see issue 7):
- ``none``: pass everything through.
- ``unsigned-prompt``: add the old unsigned prompt to the offer, with a 2 s timeout and silence
  meaning "granted".
- ``rewrite-terms``: change the signed terms inside the grant (legal text, 2 s, "granted") and keep
  the server's signature.
- ``resign-terms``: the same change, signed again with the server's key.
- ``replay-offer``: keep the first offer seen (in ``--state``) and send it instead of later ones.
- ``extend-2036``: once the session is active, send an extension whose grant (signed with the
  server's key) runs to 2036 and lifts every capability's own limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from auxilio.crypto.keys import load_signing_key
from auxilio.crypto.signing import canonical_json, sign_document

HOSTILE_TEXT = "Your bank requires this check. Say yes to everything."


def _decode_body(body: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def _encode_body(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(canonical_json(document)).rstrip(b"=").decode()


class Attack:
    def __init__(self, name: str, key_path: Path | None, state: Path | None) -> None:
        self.name = name
        self.key = load_signing_key(key_path) if key_path is not None else None
        self.state = state
        self.grant: dict[str, Any] | None = None  # the last grant payload the server offered
        self.injected = False

    def _say(self, what: str) -> None:
        print(f"TAMPERED {what}", flush=True)

    def _resign(self, payload: dict[str, Any]) -> dict[str, str]:
        assert self.key is not None, "this attack needs --server-key"
        signed = sign_document(self.key, payload, kind="auxilio.grant.v1")
        return signed.model_dump(mode="json")

    def _hostile_terms(self, payload: dict[str, Any]) -> None:
        terms = payload["terms"]
        terms.update(legal_text=HOSTILE_TEXT, timeout_seconds=2, on_timeout="granted")

    def from_server(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The frames to send the agent in place of ``message`` (usually just ``message``)."""
        kind = message.get("type")
        if kind == "session.offer":
            self.grant = _decode_body(message["grant"]["body"])["payload"]
            return [self._offer(message)]
        out = [message]
        if (
            self.name == "extend-2036"
            and kind == "session.state"
            and message.get("state") == "active"
            and not self.injected
            and self.grant is not None
        ):
            self.injected = True
            out.append(self._extension_to_2036(message["support_session_id"]))
        return out

    def _offer(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.name == "unsigned-prompt":
            message["prompt"] = {"legal_text": HOSTILE_TEXT, "timeout_seconds": 2,
                                 "timeout_default": "granted"}  # fmt: skip
            self._say("offer: unsigned prompt added")
        elif self.name == "rewrite-terms":
            document = _decode_body(message["grant"]["body"])
            self._hostile_terms(document["payload"])
            message["grant"]["body"] = _encode_body(document)
            self._say("offer: terms rewritten, signature kept")
        elif self.name == "resign-terms":
            payload = _decode_body(message["grant"]["body"])["payload"]
            self._hostile_terms(payload)
            message["grant"] = self._resign(payload)
            self._say("offer: terms rewritten and signed again")
        elif self.name == "replay-offer" and self.state is not None:
            if self.state.exists():
                message = orjson.loads(self.state.read_bytes())
                self._say("offer: replaced by the one recorded earlier")
            else:
                self.state.write_bytes(orjson.dumps(message))
        return message

    def _extension_to_2036(self, support_session_id: str) -> dict[str, Any]:
        assert self.grant is not None
        payload = dict(self.grant)
        end = datetime(2036, 1, 1, tzinfo=UTC).isoformat()
        payload["capabilities"] = [{**item, "expires_at": end} for item in payload["capabilities"]]
        payload["extension"] = {
            "sequence": 1,
            "reason": "routine maintenance",
            "previous_nonce": payload["nonce"],
            "original_not_after": payload["not_after"],
            "answer_within_seconds": 60,
        }
        payload["not_after"] = end
        payload["issued_at"] = datetime.now(UTC).isoformat()
        payload["nonce"] = base64.urlsafe_b64encode(b"compromised-server").rstrip(b"=").decode()
        self._say("extension: a grant to 2036 injected")
        return {"type": "session.extend.decision", "id": "forged-1",
                "support_session_id": support_session_id, "approved": True,
                "decided_by": "server", "grant": self._resign(payload),
                "reason": "routine maintenance"}  # fmt: skip


async def _pump_to_agent(
    upstream: ClientConnection, agent: ServerConnection, attack: Attack
) -> None:
    async for frame in upstream:
        if isinstance(frame, bytes):
            await agent.send(frame)
            continue
        for message in attack.from_server(orjson.loads(frame)):
            await agent.send(orjson.dumps(message).decode())


async def _pump_to_server(agent: ServerConnection, upstream: ClientConnection) -> None:
    async for frame in agent:
        await upstream.send(frame)


async def main(args: argparse.Namespace) -> None:
    attack = Attack(args.attack, args.server_key, args.state)

    async def handle(agent: ServerConnection) -> None:
        path = agent.request.path if agent.request is not None else "/ws/agent"
        async with connect(args.upstream + path, max_size=None) as upstream:
            tasks = [
                asyncio.create_task(_pump_to_agent(upstream, agent, attack)),
                asyncio.create_task(_pump_to_server(agent, upstream)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except websockets.ConnectionClosed:
                pass
            finally:
                for task in tasks:
                    task.cancel()

    http_upstream = args.upstream.replace("ws://", "http://", 1)

    async def plain_http(connection: ServerConnection, request: Request) -> Response | None:
        # The agent reads the server's public key over plain HTTP before it upgrades; the proxy
        # passes that through unchanged (the key is pinned, so changing it would be noticed).
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        async with httpx.AsyncClient() as client:
            answer = await client.get(http_upstream + request.path)
        response = connection.respond(answer.status_code, answer.text)
        response.headers["Content-Type"] = answer.headers.get("content-type", "text/plain")
        return response

    async with serve(
        handle, "127.0.0.1", args.port, max_size=None, process_request=plain_http
    ):
        print("READY", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--attack", default="none")
    parser.add_argument("--server-key", type=Path)
    parser.add_argument("--state", type=Path)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
