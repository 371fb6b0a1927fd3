"""The grab shows what is on the X server, on the chosen monitor; failures say why."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from auxilio.agent.screen.capture import (
    DISPLAY_UNAVAILABLE,
    MONITOR_UNKNOWN,
    ScreenError,
    ScreenSource,
    x11_display_name,
)

from .conftest import Scene, XServer, set_monitors

RED, GREEN, BLUE, GREY = 0xFF0000, 0x00FF00, 0x0000FF, 0x202020

# Three monitors of different, awkward sizes side by side on one 4646x1080 X screen.
DESK = [("left", 0, 0, 1920, 1080), ("middle", 1920, 0, 1366, 768), ("right", 3286, 0, 1360, 1080)]


def rgb(pixels: np.ndarray) -> np.ndarray:
    return pixels & 0xFFFFFF


def test_the_grab_shows_a_known_colour_at_its_place(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(1920, 1080)
    scene = scene_for(server.name)
    scene.background(GREY)
    scene.paint(100, 200, 300, 150, RED)
    with ScreenSource(server.name) as source:
        frame = source.grab()
    assert (frame.width, frame.height) == (1920, 1080)
    assert frame.pixels.dtype == np.uint32
    assert (rgb(frame.pixels[200:350, 100:400]) == RED).all()
    assert (rgb(frame.pixels[:200]) == GREY).all()
    assert (rgb(frame.pixels[350:]) == GREY).all()
    # Bytes in memory are B, G, R, A: red is the third byte.
    assert list(frame.bgra()[250, 150, :3]) == [0, 0, 255]


def test_it_lists_the_monitors_and_grabs_only_the_chosen_one(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(4646, 1080)
    set_monitors(server.name, DESK)
    scene = scene_for(server.name)
    scene.background(GREY)
    scene.paint(0, 0, 1920, 1080, RED)
    scene.paint(1920, 0, 1366, 768, GREEN)
    scene.paint(3286, 0, 1360, 1080, BLUE)
    with ScreenSource(server.name) as source:
        monitors = source.monitors()
        by_size = {(m.left, m.width, m.height): m for m in monitors}
        for (_, left, _, width, height), colour in zip(DESK, (RED, GREEN, BLUE), strict=True):
            chosen = source.select(by_size[(left, width, height)].index)
            frame = source.grab()
            assert frame.monitor == chosen
            assert frame.pixels.shape == (height, width)
            assert (rgb(frame.pixels) == colour).all()


def test_an_unknown_monitor_is_refused_and_the_choice_is_kept(
    screen: Callable[..., XServer],
) -> None:
    server = screen(1366, 768)
    with ScreenSource(server.name) as source:
        before = source.monitor
        count = len(source.monitors())
        for index in (count, -1, 99):
            with pytest.raises(ScreenError) as caught:
                source.select(index)
            assert caught.value.code == MONITOR_UNKNOWN
        assert source.monitor == before
        assert source.grab().pixels.shape == (768, 1366)


def test_the_cursor_position_is_relative_to_the_chosen_monitor(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(4646, 1080)
    set_monitors(server.name, DESK)
    scene = scene_for(server.name)
    scene.pointer(2000, 100)
    with ScreenSource(server.name) as source:
        by_left = {m.left: m for m in source.monitors()}
        source.select(by_left[1920].index)
        cursor = source.cursor()
        assert (cursor.x, cursor.y, cursor.inside) == (80, 100, True)
        source.select(by_left[3286].index)
        cursor = source.cursor()
        assert (cursor.x, cursor.y, cursor.inside) == (2000 - 3286, 100, False)


def test_a_display_killed_mid_capture_is_reported_as_unavailable(
    screen: Callable[..., XServer],
) -> None:
    server = screen(1920, 1080)
    with ScreenSource(server.name) as source:
        source.grab()
        server.kill()
        with pytest.raises(ScreenError) as caught:
            source.grab()
        assert caught.value.code == DISPLAY_UNAVAILABLE
        with pytest.raises(ScreenError) as caught:
            source.cursor()
        assert caught.value.code == DISPLAY_UNAVAILABLE


def test_a_display_that_does_not_answer_is_unavailable(screen: Callable[..., XServer]) -> None:
    server = screen(640, 480)
    server.kill()  # a display name that existed a moment ago, now with nobody behind it
    with pytest.raises(ScreenError) as caught:
        ScreenSource(server.name)
    assert caught.value.code == DISPLAY_UNAVAILABLE


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DISPLAY": ""},
        {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"},
        # XWayland gives a DISPLAY, but a grab through it would show native windows as black.
        {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"},
        {"WAYLAND_DISPLAY": "wayland-0"},
    ],
)
def test_no_x11_session_means_no_screen_view(env: dict[str, str]) -> None:
    with pytest.raises(ScreenError) as caught:
        x11_display_name(env)
    assert caught.value.code == DISPLAY_UNAVAILABLE
    with pytest.raises(ScreenError) as caught:
        ScreenSource(env=env)
    assert caught.value.code == DISPLAY_UNAVAILABLE


def test_an_x11_session_names_its_display() -> None:
    assert x11_display_name({"XDG_SESSION_TYPE": "x11", "DISPLAY": ":3"}) == ":3"
