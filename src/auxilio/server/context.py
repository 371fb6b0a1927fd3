"""Who is acting and from where: passed to every state-changing service function.

``Actor`` is the keyword-only ``actor`` argument of state changes; ``RequestInfo`` travels in a
context variable set by the HTTP middleware (or the CLI) so that every audit event carries the
request id and client address without threading them through each call.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

from auxilio.policy.roles import Role


@dataclass(frozen=True, slots=True)
class Actor:
    id: uuid.UUID | None
    display_name: str
    organisation_id: uuid.UUID | None
    role: Role | None = None
    # Permissions an API token was limited to; None means everything the role allows.
    scopes: frozenset[str] | None = None
    mfa_verified: bool = False

    @classmethod
    def system(cls, organisation_id: uuid.UUID | None = None) -> Actor:
        return cls(id=None, display_name="system", organisation_id=organisation_id)

    @property
    def is_system(self) -> bool:
        return self.id is None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_addr: str | None = None


_request_info: ContextVar[RequestInfo | None] = ContextVar("auxilio_request_info", default=None)


def current_request() -> RequestInfo:
    info = _request_info.get()
    return info if info is not None else RequestInfo(request_id="-", client_addr=None)


def set_request(info: RequestInfo) -> None:
    _request_info.set(info)
