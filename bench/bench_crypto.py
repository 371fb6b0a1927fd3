"""E2E crypto overhead: our framed seal+open against raw AES-GCM and a plain copy, same run.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_crypto.py [--seconds 1.0]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import issue_grant, read_grant
from auxilio.crypto.handshake import Handshake
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.types import Capability, CapabilityGrant, ConsentTerms

FRAME = 64 * 1024


def _throughput(step: Callable[[], object], seconds: float) -> float:
    """MB/s (10**6 bytes) of FRAME-sized steps over at least ``seconds``."""
    for _ in range(10):
        step()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            step()
        count += 50
    return count * FRAME / elapsed / 1e6


def handshake_setup() -> tuple[Callable[[], tuple[E2ESession, E2ESession]], Callable[[], object]]:
    server, device, technician = (
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate(),
        X25519PrivateKey.generate(),
    )
    now = datetime.now(UTC)
    signed = issue_grant(
        server,
        support_session_id="bench",
        organisation_id="org",
        organisation_name="Bench",
        technician_id="t",
        technician_name="T",
        technician_e2e_key=technician.public_key(),
        device_id="d",
        device_public_key=device.public_key(),
        capabilities=[
            CapabilityGrant(capability=Capability.TERMINAL, expires_at=now + timedelta(hours=1))
        ],
        policy_version="1",
        issued_at=now,
        not_after=now + timedelta(hours=1),
        terms=ConsentTerms(
            legal_text="test", timeout_seconds=60, answer_by=now + timedelta(minutes=2)
        ),
    )
    grant = read_grant(server.public_key(), signed)

    def handshake() -> tuple[E2ESession, E2ESession]:
        offer = Handshake.agent_offer(device_key=device, grant=grant)
        pending = Handshake.technician_accept(offer.hello, technician_key=technician, grant=grant)
        agent, confirm = offer.complete(pending.accept)
        return agent, pending.complete(confirm)

    return handshake, lambda: read_grant(server.public_key(), signed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds
    data = os.urandom(FRAME)

    handshake, verify = handshake_setup()
    agent, technician = handshake()

    def framed() -> object:
        return technician.open(agent.seal(ChannelId.FILES, data))

    aes = AESGCM(os.urandom(32))
    nonce_counter = iter(range(1 << 62))

    def raw() -> object:
        nonce = next(nonce_counter).to_bytes(12, "big")
        return aes.decrypt(nonce, aes.encrypt(nonce, data, b"aad"), b"aad")

    def copy() -> object:
        return bytearray(data)

    copy_mbs = _throughput(copy, seconds)
    raw_mbs = _throughput(raw, seconds)
    framed_mbs = _throughput(framed, seconds)

    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        handshake()
        rounds += 1
    handshake_ms = (time.perf_counter() - start) / rounds * 1000

    print(
        json.dumps(
            {
                "benchmark": "e2e_crypto",
                "frame_bytes": FRAME,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "copy_mb_s": round(copy_mbs, 1),
                "raw_aesgcm_seal_open_mb_s": round(raw_mbs, 1),
                "e2e_seal_open_mb_s": round(framed_mbs, 1),
                "overhead_vs_raw_aesgcm_pct": round((raw_mbs / framed_mbs - 1) * 100, 1),
                "handshake_ms": round(handshake_ms, 3),
                "grant_verify_ms": round(_timed(verify, seconds) * 1000, 3),
            }
        )
    )


def _timed(step: Callable[[], object], seconds: float) -> float:
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        rounds += 1
    return (time.perf_counter() - start) / rounds


if __name__ == "__main__":
    main()
