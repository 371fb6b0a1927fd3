"""The KPI charts, drawn on the server with matplotlib from the reporting's own result objects
(``schemas.py``): SVG for the console, PNG and PDF for the monthly report (ADR 0014).

Only ``matplotlib.figure.Figure`` with the Agg, SVG and PDF canvases is used, never pyplot: a
figure belongs to the call that made it and no global "current figure" is shared between
requests. Drawing takes tens of milliseconds, so routes call ``render`` which does it in a
worker thread; one drawing at a time, because matplotlib's font and text caches are process
globals that are not documented as thread safe.

Every chart has a title and axis labels with their unit; the pages that show one also show its
numbers in a table (charts are a picture of a table, never the only copy of a figure).
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio

if TYPE_CHECKING:  # matplotlib is imported where a chart is drawn: ~0.5 s no CLI start should pay
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from auxilio.server.reporting.schemas import Comparison, Histogram, KpiValue, TrendPoint

Gettext = Callable[[str], str]
T = TypeVar("T")

# Colours distinguishable with the common colour-vision deficiencies (Okabe-Ito).
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
GREY = "#595959"
WIDTH_IN, HEIGHT_IN = 7.0, 3.4
_LOCK = threading.Lock()
# Text kept as text in SVG (smaller, selectable, read by screen readers inside the image's
# document); matplotlib's DejaVu Sans is named with generic fallbacks.
# No TeX between two "$": labels carry people's text (team names, compared version labels).
_RC: Any = {"svg.fonttype": "none", "font.family": ["DejaVu Sans", "sans-serif"], "font.size": 9.0,
            "text.parse_math": False}


def _same(text: str) -> str:
    return text


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600.0


def _value(kpis: dict[str, KpiValue], kpi: str) -> float | None:
    found = kpis.get(kpi)
    return None if found is None else found.value


def _figure(height: float = HEIGHT_IN) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure
    figure = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, axis="y", color="#d9d9d9", linewidth=0.6)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes


def _empty(axes: Axes, _: Gettext) -> None:
    axes.text(0.5, 0.5, _("No data in this period"), transform=axes.transAxes,
              ha="center", va="center", color=GREY)  # fmt: skip


# ---- the charts ------------------------------------------------------------------------------


def resolution_trend(points: Sequence[TrendPoint], _: Gettext = _same) -> Figure:
    """Mean and median resolution time per bucket, in hours."""
    figure, axes = _figure()
    days = [p.bucket_start for p in points]
    mean = [_hours(_value(p.kpis, "resolution_time_mean")) for p in points]
    median = [_hours(_value(p.kpis, "resolution_time_median")) for p in points]
    axes.set_title(_("Resolution time"))
    axes.set_xlabel(_("Date (UTC)"))
    axes.set_ylabel(_("Hours"))
    if not any(v is not None for v in mean + median):
        _empty(axes, _)
    else:
        _line(axes, days, mean, _("Mean"), BLUE, "o")
        _line(axes, days, median, _("Median"), ORANGE, "s")
        axes.set_ylim(bottom=0)
        axes.legend(loc="upper left", frameon=False)
    _dates(figure, axes)
    return figure


def csat_trend(points: Sequence[TrendPoint], _: Gettext = _same) -> Figure:
    """CSAT and the survey response rate per bucket, in percent."""
    figure, axes = _figure()
    days = [p.bucket_start for p in points]
    csat = [_value(p.kpis, "csat") for p in points]
    rate = [_value(p.kpis, "survey_response_rate") for p in points]
    axes.set_title(_("Customer satisfaction"))
    axes.set_xlabel(_("Date (UTC)"))
    axes.set_ylabel(_("Percent"))
    if not any(v is not None for v in csat + rate):
        _empty(axes, _)
    else:
        _line(axes, days, csat, _("CSAT"), GREEN, "o")
        _line(axes, days, rate, _("Survey response rate"), GREY, "^")
        axes.legend(loc="lower left", frameon=False)
    axes.set_ylim(0, 105)
    _dates(figure, axes)
    return figure


def duration_histogram(histogram: Histogram, title: str, _: Gettext = _same) -> Figure:
    """A histogram of durations (``histogram.edges`` in seconds). The bins widen from minutes
    to weeks, so each is drawn as one equal bar labelled with its range."""
    figure, axes = _figure()
    axes.set_title(title)
    axes.set_xlabel(_("Time taken"))
    axes.set_ylabel(_("Tickets"))
    edges, counts = histogram.edges, histogram.counts
    if not counts or sum(counts) == 0 or len(edges) != len(counts) + 1:
        _empty(axes, _)
        return figure
    labels = [f"{duration_words(a)}-{duration_words(b)}" for a, b in itertools.pairwise(edges)]
    bars = axes.bar(range(len(counts)), counts, color=BLUE, width=0.85)
    axes.bar_label(bars, padding=2, fontsize=7)
    axes.set_xticks(range(len(counts)), labels, rotation=20, ha="right")
    return figure


def duration_words(seconds: float) -> str:
    """A bin edge as short words: 15 min, 4 h, 3 d."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def csat_scores(scores: dict[str, int], _: Gettext = _same) -> Figure:
    """How many answers gave each score."""
    figure, axes = _figure()
    axes.set_title(_("Survey scores"))
    axes.set_xlabel(_("Score"))
    axes.set_ylabel(_("Answers"))
    keys = sorted(scores, key=_score_order)
    if not keys or sum(scores.values()) == 0:
        _empty(axes, _)
        return figure
    bars = axes.bar(keys, [scores[k] for k in keys], color=GREEN)
    axes.bar_label(bars, padding=2)
    return figure


# What the comparison chart draws: (kpi, label msgid) by the unit of its panel.
COMPARED_TIMES = (("resolution_time_mean", "Mean resolution"),
                  ("resolution_time_median", "Median resolution"),
                  ("first_response_time_mean", "Mean first response"))  # fmt: skip
COMPARED_SHARES = (("csat", "CSAT"), ("first_contact_resolution", "First-contact resolution"),
                   ("repeat_incidents", "Repeat incidents"))  # fmt: skip


def comparison(result: Comparison, _: Gettext = _same) -> Figure:
    """Two policy versions side by side: times in hours, shares in percent."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN + 0.4), layout="constrained")
    times, shares = figure.subplots(1, 2)
    figure.suptitle(_("Policy %(a)s against %(b)s").replace("%(a)s", result.a.policy_version)
                    .replace("%(b)s", result.b.policy_version))  # fmt: skip
    _paired(times, result, COMPARED_TIMES, _hours, _("Hours"), _)
    _paired(shares, result, COMPARED_SHARES, lambda v: v, _("Percent"), _)
    shares.set_ylim(0, 105)
    handles, labels = times.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    return figure


Scale = Callable[[float | None], float | None]


def _paired(axes: Axes, result: Comparison, kpis: tuple[tuple[str, str], ...], scale: Scale,
            unit: str, _: Gettext) -> None:  # fmt: skip
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.grid(True, axis="y", color="#d9d9d9", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.set_ylabel(unit)
    xs = list(range(len(kpis)))
    for offset, version, colour in ((-0.2, result.a, BLUE), (0.2, result.b, ORANGE)):
        values = [scale(_value(version.row.kpis, kpi)) for kpi, _label in kpis]
        axes.bar([x + offset for x in xs], [v if v is not None else 0.0 for v in values],
                 width=0.38, color=colour, label=version.policy_version)  # fmt: skip
    axes.set_xticks(xs, [_(label) for _kpi, label in kpis], rotation=12)


def _line(axes: Axes, days: list[datetime], values: list[float | None], label: str, colour: str,
          marker: str) -> None:  # fmt: skip
    # A gap where a bucket has no value (None becomes NaN), rather than a line drawn through 0.
    axes.plot(cast(Any, days), [float("nan") if v is None else v for v in values], label=label,
              color=colour, marker=marker, markersize=3, linewidth=1.4)  # fmt: skip


def _dates(figure: Figure, axes: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    # matplotlib.dates has no annotations.
    locator = AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _score_order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.lstrip("-").isdigit() else (1 << 30, key)


# ---- output ----------------------------------------------------------------------------------

Build = Callable[[], "Figure"]


def _write(figure: Figure, fmt: str, *, dpi: float, title: str | None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    buffer = io.BytesIO()
    canvas = FigureCanvasSVG(figure) if fmt == "svg" else FigureCanvasAgg(figure)
    metadata = {"Title": title} if title and fmt == "svg" else None
    canvas.print_figure(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def svg(build: Build, title: str | None = None) -> bytes:
    """The figure ``build`` makes, as SVG. The style settings apply while the figure is made
    (text takes its font when created) and written, so each call builds its own figure."""
    from matplotlib import rc_context
    with _LOCK, rc_context(_RC):
        return _write(build(), "svg", dpi=72, title=title)


def png(builds: Sequence[Build], dpi: float = 100) -> bytes:
    """The figures one under the other, as one tall PNG."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    with _LOCK, rc_context(_RC):
        parts = [build() for build in builds]
        height = sum(p.get_figheight() for p in parts)
        tall = Figure(figsize=(max(p.get_figwidth() for p in parts), height))
        # Each part drawn as a picture into its slot of the tall figure keeps its own layout.
        for index, part in enumerate(parts):
            image = _pixels(part, dpi)
            axes = tall.add_axes((0.0, 1.0 - sum(p.get_figheight() for p in parts[: index + 1])
                                  / height, 1.0, part.get_figheight() / height))  # fmt: skip
            axes.imshow(image, interpolation="none")
            axes.set_axis_off()
        return _write(tall, "png", dpi=dpi, title=None)


def _pixels(figure: Figure, dpi: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    # FigureCanvasAgg's drawing methods have no annotations.
    canvas.draw()  # type: ignore[no-untyped-call]
    return canvas.buffer_rgba()  # type: ignore[no-untyped-call]


def pdf(builds: Sequence[Build], title: str) -> bytes:
    """One page per figure."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_pdf import PdfPages
    buffer = io.BytesIO()
    with _LOCK, rc_context(_RC), PdfPages(
        buffer, metadata={"Title": title, "Creator": "Auxilio"}
    ) as pages:
        for build in builds:
            pages.savefig(build())
    return buffer.getvalue()


async def render(work: Callable[[], T]) -> T:
    """``work`` (building and writing figures) in a worker thread, off the event loop."""
    return await anyio.to_thread.run_sync(work)
