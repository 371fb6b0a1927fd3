"""Remote control messages (channel INPUT, docs/protocol.md section 3b): the technician's pointer
and keys on the device's screen, and the device's word on them.

They travel on their own channel, INPUT, not on SCREEN's: control is a capability of its own
(``input``, policy ``remote_control``) granted and revoked apart from the view, and the agent
tells a message's capability by its channel before acting on it.

Pointer coordinates are in the viewer's picture of the monitor being viewed, with the size of
that picture (``width`` x ``height``): the device scales them to the monitor, so the viewer never
needs to know the monitor's real size. Wheel steps and button changes ride on the pointer event
at that position.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from auxilio.protocol.types import WireModel

MAX_VIEW_SIDE = 16384
MAX_WHEEL_STEPS = 10

ViewCoordinate = Annotated[int, Field(ge=0, lt=MAX_VIEW_SIDE)]
ViewSide = Annotated[int, Field(ge=1, le=MAX_VIEW_SIDE)]
Button = Annotated[int, Field(ge=1, le=3)]  # left, middle, right
WheelSteps = Annotated[int, Field(ge=-MAX_WHEEL_STEPS, le=MAX_WHEEL_STEPS)]
# KeyboardEvent.code ("KeyA", "ShiftLeft", "Numpad1") and .key ("a", "Shift", "é", "Dead").
KeyCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,40}$")]
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=40)]
InputErrorCodeText = Annotated[
    str, StringConstraints(pattern=r"^screen\.input(\.[a-z0-9_]+)+$", max_length=100)
]


class InputErrorCode(StrEnum):
    """Codes of ``input.error`` beyond the injector's own (``agent.screen.input``)."""

    NOT_ALLOWED = "screen.input.not_allowed"
    NOT_VIEWING = "screen.input.not_viewing"
    VIEW_PAUSED = "screen.input.view_paused"
    UNAVAILABLE = "screen.input.unavailable"


class InputPointer(WireModel):
    """Viewer -> device: the pointer is at (x, y) of the viewer's ``width`` x ``height``
    picture; then ``down`` buttons pressed, ``up`` released, ``wheel_x``/``wheel_y`` steps
    (positive: right / down)."""

    type: Literal["input.pointer"] = "input.pointer"
    x: ViewCoordinate
    y: ViewCoordinate
    width: ViewSide
    height: ViewSide
    down: tuple[Button, ...] = Field(default=(), max_length=3)
    up: tuple[Button, ...] = Field(default=(), max_length=3)
    wheel_x: WheelSteps = 0
    wheel_y: WheelSteps = 0

    @model_validator(mode="after")
    def _inside(self) -> InputPointer:
        if self.x >= self.width or self.y >= self.height:
            raise ValueError(f"({self.x}, {self.y}) is outside the {self.width}x{self.height} view")
        return self


class InputKey(WireModel):
    """Viewer -> device: a browser key event (``code``, ``key``) down or up, with the modifier
    flags the browser reports for it."""

    type: Literal["input.key"] = "input.key"
    code: KeyCode
    key: KeyName
    down: bool
    ctrl: bool = False
    shift: bool = False
    alt: bool = False
    meta: bool = False


class InputPaused(WireModel):
    """Device -> viewer: the person is using their own mouse or keyboard; events are dropped
    until ``input.resumed``."""

    type: Literal["input.paused"] = "input.paused"
    by: Literal["person"] = "person"


class InputResumed(WireModel):
    type: Literal["input.resumed"] = "input.resumed"


class InputRevoked(WireModel):
    """Device -> viewer: control ended: the person pressed the take-back combination on their
    keyboard (``take_back``, for the rest of the grant), or control was revoked, expired, the
    screen view was revoked or the session ended (``ended``)."""

    type: Literal["input.revoked"] = "input.revoked"
    reason: Literal["take_back", "ended"]


class InputError(WireModel):
    """Device -> viewer: an event was refused (nothing of it was sent); ``code`` is stable."""

    type: Literal["input.error"] = "input.error"
    code: InputErrorCodeText
    message: Annotated[str, StringConstraints(max_length=2000)] = ""


INPUT_JSON_TYPES = frozenset({
    "input.pointer", "input.key", "input.paused", "input.resumed", "input.revoked", "input.error",
})  # fmt: skip
