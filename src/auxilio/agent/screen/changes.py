"""What changed on screen since the last frame: 64 px tiles, merged into a few rectangles.

The diff compares ``uint32`` pixels (one comparison per pixel, ~2 ms for 1080p; comparing RGB
bytes is ten times slower). Dirty tiles are then merged: the browser pays per rectangle (168
separate tiles cost 129 ms a frame), so the result is at most ``max_rects`` rectangles, merging
neighbours while the merge wastes little (clean area sent again) and always when over the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from auxilio.agent.screen.capture import Pixels

TILE = 64
MAX_RECTS = 8
WASTE_LIMIT = 0.3
"""A merge that is not forced is made when at most this share of the merged rectangle is clean."""
_ROW_BANDS_ABOVE = 16
"""More first-pass rectangles than this: merge per tile row first, keeping the greedy pass cheap
(it compares every pair, so its cost grows with the cube of the count)."""
_GREEDY_AT_MOST = 24


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle in pixels of the frame (clipped to it)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True, slots=True)
class _Cells:
    """A rectangle in tile units, half-open: columns ``x0..x1``, rows ``y0..y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def union(self, other: _Cells) -> _Cells:
        return _Cells(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )


def dirty_tiles(previous: Pixels, current: Pixels, tile: int = TILE) -> npt.NDArray[np.bool_]:
    """A ``(rows, columns)`` grid: True where any pixel of that tile differs."""
    if previous.shape != current.shape:
        raise ValueError(f"frame sizes differ: {previous.shape} and {current.shape}")
    height, width = current.shape
    grid = np.zeros((-(-height // tile), -(-width // tile)), dtype=np.bool_)
    # Two pixels per comparison where the width allows: half the work, the same answer per tile.
    pair = 2 if width % 2 == 0 and tile % 2 == 0 else 1
    kind = np.uint64 if pair == 2 else np.uint32
    changed = previous.view(kind) != current.view(kind)
    rows = changed.any(axis=1)
    if not rows.any():
        return grid
    starts = np.arange(0, changed.shape[1], tile // pair)
    for band in np.flatnonzero(np.logical_or.reduceat(rows, np.arange(0, height, tile))):
        columns = changed[band * tile : (band + 1) * tile].any(axis=0)
        grid[band] = np.logical_or.reduceat(columns, starts)
    return grid


def merge_tiles(
    grid: npt.NDArray[np.bool_],
    *,
    max_rects: int = MAX_RECTS,
    waste_limit: float = WASTE_LIMIT,
) -> list[_Cells]:
    """Few rectangles (in tile units) covering every dirty tile of ``grid``."""
    if max_rects < 1:
        raise ValueError("max_rects must be at least 1")
    rects = _row_runs(grid)
    if len(rects) > _ROW_BANDS_ABOVE:
        rects = _stack(
            [
                _Cells(int(cols[0]), r, int(cols[-1]) + 1, r + 1)
                for r in range(grid.shape[0])
                if (cols := np.flatnonzero(grid[r])).size
            ]
        )
    while len(rects) > _GREEDY_AT_MOST:
        # Still many (a tall screen changed everywhere): halve by joining neighbours in y.
        rects.sort(key=lambda c: (c.y0, c.x0))
        rects = [a.union(b) for a, b in zip(rects[::2], rects[1::2], strict=False)] + (
            [rects[-1]] if len(rects) % 2 else []
        )
    # A summed-area table answers "how many dirty tiles in this rectangle" in O(1).
    table = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = grid.cumsum(axis=0).cumsum(axis=1)

    def dirty(c: _Cells) -> int:
        return int(table[c.y1, c.x1] - table[c.y0, c.x1] - table[c.y1, c.x0] + table[c.y0, c.x0])

    while len(rects) > 1:
        best: tuple[float, int, int, _Cells] | None = None
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                merged = rects[i].union(rects[j])
                waste = (merged.area - dirty(merged)) / merged.area
                if best is None or waste < best[0]:
                    best = (waste, i, j, merged)
        assert best is not None  # noqa: S101 - the loop runs over at least one pair
        waste, i, j, merged = best
        if waste > waste_limit and len(rects) <= max_rects:
            break
        # Merging may swallow other rectangles; drop those it now covers.
        rects = [r for k, r in enumerate(rects) if k not in (i, j) and not _inside(r, merged)]
        rects.append(merged)
    return rects


def _row_runs(grid: npt.NDArray[np.bool_]) -> list[_Cells]:
    """Horizontal runs of dirty tiles per tile row, stacked where runs line up exactly."""
    runs: list[_Cells] = []
    for r in range(grid.shape[0]):
        row = np.concatenate(([False], grid[r], [False]))
        edges = np.flatnonzero(row[1:] != row[:-1])
        runs.extend(
            _Cells(int(a), r, int(b), r + 1) for a, b in zip(edges[::2], edges[1::2], strict=True)
        )
    return _stack(runs)


def _stack(rows: list[_Cells]) -> list[_Cells]:
    """Merge rectangles of consecutive rows that span exactly the same columns."""
    open_: dict[tuple[int, int], _Cells] = {}
    done: list[_Cells] = []
    for cell in rows:
        key = (cell.x0, cell.x1)
        above = open_.get(key)
        if above is not None and above.y1 == cell.y0:
            open_[key] = _Cells(above.x0, above.y0, above.x1, cell.y1)
        else:
            if above is not None:
                done.append(above)
            open_[key] = cell
    return done + list(open_.values())


def _inside(inner: _Cells, outer: _Cells) -> bool:
    return (
        outer.x0 <= inner.x0
        and outer.y0 <= inner.y0
        and inner.x1 <= outer.x1
        and inner.y1 <= outer.y1
    )


class ChangeDetector:
    """Compares each frame with the one before; the first frame (and after ``reset``) is all
    changed. It keeps a reference to the previous frame: give it a fresh array each time (each
    grab is one)."""

    def __init__(
        self, *, tile: int = TILE, max_rects: int = MAX_RECTS, waste_limit: float = WASTE_LIMIT
    ) -> None:
        self.tile = tile
        self.max_rects = max_rects
        self.waste_limit = waste_limit
        self._previous: Pixels | None = None

    def reset(self) -> None:
        self._previous = None

    def changes(self, current: Pixels) -> list[Rect]:
        """The changed rectangles, ``[]`` when nothing changed (then no frame need be sent)."""
        previous, self._previous = self._previous, current
        height, width = current.shape
        if previous is None or previous.shape != current.shape:
            return [Rect(0, 0, width, height)]
        grid = dirty_tiles(previous, current, self.tile)
        if not grid.any():
            return []
        cells = merge_tiles(grid, max_rects=self.max_rects, waste_limit=self.waste_limit)
        t = self.tile
        return [
            Rect(
                c.x0 * t,
                c.y0 * t,
                min(c.x1 * t, width) - c.x0 * t,
                min(c.y1 * t, height) - c.y0 * t,
            )
            for c in sorted(cells, key=lambda c: (c.y0, c.x0))
        ]
