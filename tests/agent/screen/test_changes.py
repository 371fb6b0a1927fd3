"""The diff finds what changed, in few rectangles, and nothing when nothing changed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from auxilio.agent.screen.capture import ScreenSource
from auxilio.agent.screen.changes import MAX_RECTS, ChangeDetector, Rect, dirty_tiles

from .conftest import Scene, XServer


def blank(width: int = 1920, height: int = 1080) -> np.ndarray:
    return np.full((height, width), 0xFF202020, dtype=np.uint32)


def covered(rects: list[Rect], shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for r in rects:
        mask[r.y : r.y + r.h, r.x : r.x + r.w] = True
    return mask


def detector_after(first: np.ndarray) -> ChangeDetector:
    detector = ChangeDetector()
    assert detector.changes(first) == [Rect(0, 0, first.shape[1], first.shape[0])]
    return detector


def test_the_first_frame_is_all_changed_and_an_identical_one_is_nothing() -> None:
    detector = detector_after(blank())
    assert detector.changes(blank()) == []


def test_one_changed_pixel_is_its_tile() -> None:
    detector = detector_after(blank())
    frame = blank()
    frame[70, 130] = 0xFFFFFFFF
    assert detector.changes(frame) == [Rect(128, 64, 64, 64)]


def test_a_change_across_a_tile_corner_covers_the_four_tiles() -> None:
    detector = detector_after(blank())
    frame = blank()
    frame[120:140, 120:140] = 0xFF00FF00
    assert detector.changes(frame) == [Rect(64, 64, 128, 128)]


@pytest.mark.parametrize("width", [1366, 1365])
def test_edge_tiles_of_an_odd_sized_screen_are_clipped_to_it(width: int) -> None:
    detector = detector_after(blank(width, 767))
    frame = blank(width, 767)
    frame[766, width - 1] = 0
    # 1366 = 21 * 64 + 22 and 767 = 11 * 64 + 63: the last tile is 22 (or 21) x 63 pixels.
    assert detector.changes(frame) == [Rect(1344, 704, width - 1344, 63)]


def test_two_changes_far_apart_stay_two_rectangles() -> None:
    detector = detector_after(blank())
    frame = blank()
    frame[10, 10] = 0
    frame[1000, 1800] = 0
    assert detector.changes(frame) == [Rect(0, 0, 64, 64), Rect(1792, 960, 64, 64)]


def test_a_new_frame_size_is_all_changed() -> None:
    detector = detector_after(blank())
    assert detector.changes(blank(1366, 768)) == [Rect(0, 0, 1366, 768)]


@pytest.mark.parametrize("seed", range(6))
def test_scattered_changes_merge_into_few_rectangles_covering_all(seed: int) -> None:
    rng = np.random.default_rng(seed)
    detector = detector_after(blank())
    frame = blank()
    for _ in range(int(rng.integers(20, 400))):
        y, x = int(rng.integers(0, 1080)), int(rng.integers(0, 1920))
        frame[y, x] = 0xFF000000 | int(rng.integers(0, 1 << 24))
    changed = frame != blank()
    rects = detector.changes(frame)
    assert 1 <= len(rects) <= MAX_RECTS
    assert covered(rects, frame.shape)[changed].all()
    for r in rects:
        assert r.x >= 0 and r.y >= 0 and r.x + r.w <= 1920 and r.y + r.h <= 1080


def test_a_checkerboard_of_changed_tiles_stays_within_the_bound() -> None:
    detector = detector_after(blank())
    frame = blank()
    for ty in range(0, 17):
        for tx in range(ty % 2, 30, 2):
            frame[ty * 64, tx * 64] = 0
    rects = detector.changes(frame)
    assert len(rects) <= MAX_RECTS
    assert covered(rects, frame.shape)[frame != blank()].all()


def test_dirty_tiles_refuses_frames_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="frame sizes differ"):
        dirty_tiles(blank(), blank(1366, 768))


def test_it_finds_exactly_the_window_that_changed_on_the_x_server(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(1920, 1080)
    scene = scene_for(server.name)
    scene.background(0x202020)
    window = scene.paint(128, 256, 192, 128, 0xFF0000)
    with ScreenSource(server.name) as source:
        detector = ChangeDetector()
        detector.changes(source.grab().pixels)
        assert detector.changes(source.grab().pixels) == []
        scene.recolour(window, 0x00FF00)
        assert detector.changes(source.grab().pixels) == [Rect(128, 256, 192, 128)]
        # A dragged window: its old place and its new place changed, nothing else.
        scene.move(window, 1280, 640)
        before = source.grab().pixels
        rects = detector.changes(before)
        assert sorted(rects, key=lambda r: r.y) == [
            Rect(128, 256, 192, 128),
            Rect(1280, 640, 192, 128),
        ]
