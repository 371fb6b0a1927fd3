"""JSON Lines export of a chain, and verification of an export file, offline.

File layout, one JSON object per line:
    {"type": "header", "format": "auxilio-audit-export/1", "chain": ..., "public_key": ...}
    {"type": "checkpoint", ...}   every signed checkpoint of the chain
    {"type": "event", ...}        every event in seq order, with prev_hash and hash
    {"type": "head", "seq": ..., "hash": ..., "signed_at": ..., "key_id": ..., "signature": ...}
A chain without its head line fails verification, as a chain without its head row does.
A file may hold several chains one after another, each opened by its header.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncConnection

from auxilio.server.audit.chain import Break, BreakCode, ChainReport, ChainVerifier
from auxilio.server.audit.reading import iter_events, load_checkpoints, load_head

FORMAT = "auxilio-audit-export/1"


class ExportFileInvalid(ValueError):
    """The file is not an Auxilio audit export (or is cut off mid-line)."""


def public_key_b64(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode()


async def export_chain(
    conn: AsyncConnection, chain: str, out: IO[bytes], *, public_key: Ed25519PublicKey
) -> int:
    def line(obj: dict[str, Any]) -> None:
        out.write(orjson.dumps(obj) + b"\n")

    line(
        {
            "type": "header",
            "format": FORMAT,
            "chain": chain,
            "public_key": public_key_b64(public_key),
        }
    )
    for cp in await load_checkpoints(conn, chain):
        line({"type": "checkpoint", **cp})
    count = 0
    async for event in iter_events(conn, chain):
        line({"type": "event", **event})
        count += 1
    head = await load_head(conn, chain)
    if head is not None:
        line({"type": "head", **head})
    return count


def _records(lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ExportFileInvalid(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(obj, dict) or "type" not in obj:
            raise ExportFileInvalid(f"line {number} has no record type")
        yield number, obj


def verify_export(
    lines: Iterable[bytes],
    *,
    public_key: Ed25519PublicKey | None,
    witness: Mapping[str, list[dict[str, Any]]] | None = None,
) -> list[ChainReport]:
    """Verify an export (against the witness entries of its chains, when given). Checkpoints
    precede events in the file, so events stream through."""
    seen = witness or {}
    reports: list[ChainReport] = []
    verifier: ChainVerifier | None = None
    checkpoints: list[dict[str, Any]] = []
    chain = ""
    head: dict[str, Any] | None = None

    def close() -> None:
        nonlocal verifier
        if chain:
            if verifier is None:
                verifier = start()
            reports.append(verifier.finish(head=head))
        verifier = None

    def start() -> ChainVerifier:
        return ChainVerifier(
            chain, public_key=public_key, checkpoints=checkpoints, witness=seen.get(chain, ())
        )

    for number, obj in _records(lines):
        kind = obj["type"]
        if kind == "header":
            close()
            if obj.get("format") != FORMAT:
                raise ExportFileInvalid(f"line {number}: unknown format {obj.get('format')!r}")
            chain, checkpoints, head = obj["chain"], [], None
        elif not chain:
            raise ExportFileInvalid(f"line {number}: record before the header")
        elif kind == "checkpoint":
            if verifier is not None:
                raise ExportFileInvalid(f"line {number}: checkpoint after the events")
            checkpoints.append(obj)
        elif kind == "event":
            if verifier is None:
                verifier = start()
            if obj.get("chain") != chain:
                verifier.report.broken = verifier.report.broken or Break(
                    chain,
                    int(obj.get("seq", 0)),
                    "belongs to another chain",
                    BreakCode.FOREIGN_EVENT,
                )
            try:
                verifier.feed(obj)
            except (KeyError, TypeError, ValueError) as exc:
                verifier.report.broken = verifier.report.broken or Break(
                    chain,
                    int(obj.get("seq", 0) or 0),
                    f"malformed event ({exc})",
                    BreakCode.MALFORMED_EVENT,
                )
        elif kind == "head":
            head = obj
        else:
            raise ExportFileInvalid(f"line {number}: unknown record type {kind!r}")
    close()
    if not reports:
        raise ExportFileInvalid("the file holds no chain")
    return reports
