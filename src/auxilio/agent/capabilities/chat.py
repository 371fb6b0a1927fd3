"""The chat capability: lines the person types go to the technician, the technician's lines are
printed. Only the text travels, end-to-end encrypted; the server sees neither."""

from __future__ import annotations

from datetime import UTC, datetime

from auxilio.protocol.app import ChatMessage

MAX_CHAT_TEXT = 8000


def outgoing(text: str, *, now: datetime | None = None) -> list[ChatMessage]:
    """The chat messages for one typed line (long pastes are split at the protocol limit)."""
    sent_at = now or datetime.now(UTC)
    return [
        ChatMessage(text=text[start : start + MAX_CHAT_TEXT], sent_at=sent_at)
        for start in range(0, len(text), MAX_CHAT_TEXT)
    ]


def printable(message: ChatMessage) -> str:
    """The technician's text without control characters: a chat line must not be able to move
    the cursor or rewrite the status line the person relies on."""
    return "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in message.text)
