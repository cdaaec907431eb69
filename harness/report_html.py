"""``report.html``: one self-contained page per run (or joined runs), plots embedded.

The page opens offline: styles are inline, plots are PNG images embedded as
``data:`` URIs (drawn with matplotlib's Agg canvas, imported on call), and
nothing is fetched from anywhere. Every string that comes from the results
document (model and dataset names come from plugins) is HTML-escaped.

The tables are the ones :mod:`harness.report` builds for ``report.md`` too;
the plots are drawn once by :func:`render_plots` and shared with the
Markdown report, which links them as PNG files in ``plots/``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.latency import UNSTABLE_MARK
from harness.report import (
    CPU,
    EDGE_NOTE,
    LATENCY_NOTE,
    ORT,
    PLOT_TITLES,
    REFERENCE_NOTE,
    SEEDS_NOTE,
    results_note,
    VARIANTS_NOTE,
    Table,
    _get,
    _number,
    accuracy_of,
    candidates,
    config_table,
    deployment_tables,
    edge_lines,
    environment_table,
    export_notes,
    failed_heading,
    failed_table,
    compute_front_table,
    compute_candidates,
    header_facts,
    history_table,
    is_joined,
    job_label,
    latency_notes,
    latency_table,
    memory_growth,
    metric_failures,
    metrics_note,
    metrics_table,
    most_accurate,
    pareto_table,
    reference_notes,
    reference_table,
    results_table,
    seconds_text,
    seed_group,
    seed_table,
    seedless_point,
    training_note,
    training_table,
    variants_table,
)
from harness.results import atomic_write_bytes, atomic_write_text, safe_name

DPI = 100


@dataclass
class Plot:
    """One drawn figure: ``png`` is None when drawing failed (``error`` says why)."""

    key: str
    title: str
    file_name: str
    png: bytes | None = None
    error: str | None = None
    job: str | None = None
    # A crowded scatter's numbered points, (number, label): the reports list them whole under the image
    # (the key beside it shortens names, and holds :data:`KEY_LINES` lines at most).
    numbered: list[tuple[int, str]] = field(default_factory=list)
    # A scatter of more than LABEL_LIMIT points: how many of its ``points`` have no name or number.
    unlabelled: int = 0
    points: int = 0

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png or b"").decode("ascii")


@dataclass
class Drawing:
    """What a scatter plot function returns: the image and its numbered points (see :func:`_point_names`)."""

    png: bytes
    numbered: list[tuple[int, str]]
    unlabelled: int = 0  # points drawn as plain markers (a scatter of more than LABEL_LIMIT points)
    points: int = 0


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


# -- plots ----------------------------------------------------------------------------------------------------


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


SERIES_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8E6C00", "#332288", "#882255", "#117733",
                 "#007A87", "#AA4499")
"""The series colours, in the order they are handed out: ten hues, each at least 3:1 against the plots' white
background (WCAG 1.4.11; matplotlib's tab10 orange was 2.5:1, its olive 2.0:1), the first four Okabe and Ito's
colours for readers with a colour-vision deficiency (blue against vermillion is the pair every kind tells
apart). Series differ in marker and line style as well (:func:`_series_styles`)."""


JOIN_GREY = "#737373"
"""The lines that join a variant to its fp32 export (4.8:1 on white; matplotlib's "0.6" was 2.8:1)."""
BACKGROUND_GREY = "#8C8C8C"
"""The latency series a sweep's figure draws without a name, beneath the named ones: pale, still 3.4:1."""


SERIES_MARKERS = ("o", "s", "^", "D", "v", "P")
SERIES_LINES = ("-", "--", ":", "-.")


def _series_styles(n: int) -> list[tuple[Any, str, str]]:
    """A ``(colour, marker, linestyle)`` for each of ``n`` series, no two alike.

    Colours come from :data:`SERIES_COLORS` only (no light and dark shades of one hue to tell apart). The
    marker and the line style change from one series to the next as well, not only after ten, so series
    differ in shape for a reader who cannot tell the hues apart. The line style also moves on one step
    every ten series, so the combinations stay distinct for up to 120 series.
    """
    return [(SERIES_COLORS[i % len(SERIES_COLORS)], SERIES_MARKERS[i % len(SERIES_MARKERS)],
             SERIES_LINES[(i + i // 10) % len(SERIES_LINES)]) for i in range(n)]


def _cut(text: str, limit: int) -> str:
    """``text`` cut in the middle to ``limit`` characters at most."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2:]


MIN_HEAD = 8  # characters of a label's run and model name kept when its sweep settings need the room


def _settings_at(label: str) -> int:
    """Where a job's label (``run: model [settings] variant``) starts its `` [settings]``; -1 without."""
    start = label.find(" [")
    return start if start > 0 and "]" in label[start:] else -1


def _short(text: str, limit: int = 64) -> str:
    """``text`` in ``limit`` characters; a job's label loses the middle of its run and model name before
    any of its settings: in a sweep the settings are what tell the points apart (cut in the middle,
    ``model [batch_size=…seed=0]`` read alike for every batch size), and one model name is shared by
    many. Settings too long even so are cut in the middle after all."""
    start = _settings_at(text)
    if len(text) <= limit or start < 0:
        return _cut(text, limit)
    head, rest = text[:start], text[start:]
    if limit - len(rest) >= MIN_HEAD:
        return _cut(head, limit - len(rest)) + rest
    return _cut(_cut(head, MIN_HEAD) + rest, limit)


def _name(label: str, limit: int = 48) -> str:
    """A scatter point's name: a label longer than ``limit`` on two lines, its model and its settings, each
    cut to ``limit`` only if longer (the names are each model's best, so the model part tells them apart
    as much as the settings do)."""
    start = _settings_at(label)
    if len(label) <= limit or start < 0:
        return _cut(label, limit)
    return _cut(label[:start], limit) + "\n" + _short(label[start + 1:], limit)


LABELLED_DIGITS = ("1", "125", "1235", "123456789")
"""The leading digits of the ticks labelled on a short log axis, fewest first (see :func:`_plain_log_axis`)."""


def _plain_log_axis(ax: Any, axis: str = "x") -> None:
    """Log-scale ticks as plain numbers (``0.05``, ``200``), with at least two (three where there are)
    labelled on an axis of less than about a decade and a half.

    Past that the powers of ten are enough. On a shorter axis, the ticks at 2 and 5 are labelled too, and
    more digits when that still shows fewer than three numbers (11,000 to 45,000 had only "20000"); an
    axis too short to hold three such ticks at all gets evenly spaced ones.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, NullLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())
    if low <= 0 or high / low >= 30:
        return
    ticks = [d * 10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for d in range(1, 10) if low <= d * 10.0 ** e <= high]
    if len(ticks) < 3:
        target.set_major_locator(MaxNLocator(nbins=4))
        target.set_minor_locator(NullLocator())
        return
    digits = next((d for d in LABELLED_DIGITS if sum(f"{t:.0e}"[0] in d for t in ticks) >= 3), LABELLED_DIGITS[-1])
    target.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in digits else ""))


def _labelled(points: list[dict[str, Any]], value: str, pareto: bool) -> set[int]:
    """Which points get a text label: all of a few; else each model's best (and the Pareto ones)."""
    if len(points) <= 8:
        return set(range(len(points)))
    chosen = {i for i, c in enumerate(points) if pareto and c.get("pareto")}
    best: dict[str, int] = {}
    for i, c in enumerate(points):
        model = (c["dataset"], c["label"].split(" [")[0])
        if model not in best or c[value] > points[best[model]][value]:
            best[model] = i
    return chosen | set(best.values())


KEY_LINES = 40  # lines of the key beside a crowded plot; the reports list every numbered point under it


def _point_names(points: list[dict[str, Any]], x_key: str,
                 pareto: bool) -> tuple[dict[int, str], set[int], list[tuple[int, str]]]:
    """Text beside each point: ``(names, numbered, key)``.

    A few points are all labelled. A crowded plot (a sweep) labels each model's best and the Pareto
    points, and numbers the rest (``numbered``) from left to right; ``key`` holds ``(number, label)``
    for each number, so every point on the plot can be told apart. These are the names asked for: when
    drawn (:func:`_draw_scatter`), a name with no room beside its point is numbered too.
    """
    labelled = _labelled(points, "accuracy", pareto)
    names = {i: _name(points[i]["label"]) for i in labelled}
    rest = sorted((i for i in range(len(points)) if i not in labelled),
                  key=lambda i: (points[i][x_key], -points[i]["accuracy"]))
    key = []
    for number, i in enumerate(rest, 1):
        names[i] = str(number)
        key.append((number, str(points[i]["label"])))
    return names, set(rest), key


LABEL_LIMIT = 60
"""Points a scatter labels at most (a name or a number each). A scatter of more points labels this many:
its Pareto points, then each model's best, then the most accurate; the others are plain markers, and
results.csv and the report's tables list every job. Placing a label costs time that grows with the labels
and markers around it: past about this many, placement took most of a report's time (a 400-job sweep's
report took two minutes) and the numbered cloud no longer said which point was which anyway."""


def _chosen(points: list[dict[str, Any]], x_key: str, front: bool) -> list[int]:
    """The indices of the points a scatter labels: all of up to :data:`LABEL_LIMIT`; else that many, the
    Pareto points first (when the plot draws a front), then each model's best, then the most accurate."""
    if len(points) <= LABEL_LIMIT:
        return list(range(len(points)))
    best: dict[tuple[Any, str], int] = {}
    for i, c in enumerate(points):
        model = (c["dataset"], str(c["label"]).split(" [")[0])
        if model not in best or c["accuracy"] > points[best[model]]["accuracy"]:
            best[model] = i
    bests = set(best.values())
    order = sorted(range(len(points)), key=lambda i: (not (front and points[i].get("pareto")), i not in bests,
                                                      -points[i]["accuracy"], points[i][x_key], i))
    return sorted(order[:LABEL_LIMIT])


KEY_WIDTH = 48  # characters of a label on one line of the key beside a crowded plot (its column's width)


def _key_lines(key: list[tuple[int, str]], limit: int = KEY_LINES) -> list[str]:
    """The key drawn beside a crowded plot: ``limit`` (:data:`KEY_LINES`) lines at most, then where the rest are.

    An entry keeps all its sweep settings: a label too long for a line loses the middle of its model name
    (:func:`_short`), and one whose settings alone are too long runs on to further lines, since cut
    there, points that differ only in a setting would read alike. The reports list every entry whole
    under the plot.
    """
    lines: list[str] = []
    for n, (number, label) in enumerate(key):
        start = _settings_at(label)
        if len(label) > KEY_WIDTH and start > 0 and len(label) - start + MIN_HEAD > KEY_WIDTH:
            entry = textwrap.wrap(_cut(label[:start], MIN_HEAD) + label[start:], KEY_WIDTH,
                                  subsequent_indent="  ", break_on_hyphens=False)
        else:
            entry = [_short(label, KEY_WIDTH)]
        if len(lines) + len(entry) > limit:
            lines.append(f"... and {len(key) - n} more, listed under the plot")
            break
        lines += [f"{number:>3}  {entry[0]}"] + [f"     {more}" for more in entry[1:]]
    return lines


MARKERS = {"fp32": "o", "fp16": "s", "int8-dynamic": "^", "int8-static": "v", "ort-opt": "D", "slim": "P"}
"""Each variant's marker; another (a plugin's) takes the next of :data:`OTHER_MARKERS` not in use."""
OTHER_MARKERS = ("X", "*", "h", "<", ">", "p")


def variant_marker(kind: str, kinds: list[str]) -> str:
    """The marker of variant ``kind`` among the plotted ``kinds``: its own, else one no other kind has."""
    if kind in MARKERS:
        return MARKERS[kind]
    others = [k for k in kinds if k not in MARKERS]
    return OTHER_MARKERS[others.index(kind) % len(OTHER_MARKERS)] if kind in others else "X"

# Label placement on a scatter, in points (1/72 inch): labels sit GAP_X beside a point, a little above or
# below it; one that would cover another label, a marker or the legend moves to the nearest free spot within
# NAME_REACH (a thin leader line joins it to its point when it is further than LEADER_BEYOND), or else its
# point is numbered in the key. A number looks for a free spot further out, NUMBER_REACH, then anywhere.
GAP_X, GAP_Y, NAME_REACH, NUMBER_REACH, LEADER_BEYOND, GRID_STEP = 7.0, 1.0, 16.0, 72.0, 9.5, 2.0
MARKER_HALF, RING_HALF, LABEL_PAD = 4.0, 6.3, 1.5  # half-widths of a marker's and a Pareto ring's box; px
# A label must be AMBIGUOUS_BY nearer its own point than any other to read as its own; a number that
# cannot be counts AMBIGUOUS_COST further away (and gets a leader line).
AMBIGUOUS_BY, AMBIGUOUS_COST = 2.0, 30.0
CROSSING_COST = 60.0  # how much further a spot counts whose leader line would cross a text (or one it)


@dataclass
class _Label:
    """A text drawn beside a scatter point: its name, or its number in the key."""

    index: int
    text: str
    number: bool
    artist: Any


def _scatter_axes(points: list[dict[str, Any]], x_key: str, xlabel: str, title: str, front: bool,
                  wide: bool) -> tuple[Any, Any, Any]:
    """The scatter's figure without its labels, laid out and frozen: ``(fig, ax, key_ax)``.

    ``wide`` leaves a column beside the axes for the key (``key_ax``, else None). The layout and the legend's
    place are fixed here, so labels placed afterwards by measuring stay where they were measured.

    Colour tells the points' groups apart: their dataset, and in a report that joins runs their run (a
    candidate's ``run``), which is what such a report compares. The marker tells
    variants apart; with no variants it is the group's too, so groups differ in more than hue.
    """
    datasets = list(dict.fromkeys(str(c["dataset"]) for c in points))
    runs = list(dict.fromkeys(c["run"] for c in points if c.get("run") is not None))

    def group(c: dict[str, Any]) -> tuple[str, ...]:
        return ((str(c.get("run")),) if len(runs) > 1 else ()) + ((str(c["dataset"]),) if len(datasets) > 1 else ())

    groups = list(dict.fromkeys(group(c) for c in points))
    styles = dict(zip(groups, _series_styles(len(groups))))
    kinds = list(dict.fromkeys(c["kind"] for c in points))
    plain = kinds == ["fp32"]

    def marker(c: dict[str, Any]) -> str:
        return styles[group(c)][1] if plain else variant_marker(c["kind"], kinds)

    def hollow(g: tuple[str, ...]) -> bool:
        """With variants the marker is the variant's: every other group draws it hollow, so neighbouring
        groups differ in more than hue (blue and vermillion aside, hues run together for some readers)."""
        return not plain and groups.index(g) % 2 == 1

    def paint(g: tuple[str, ...]) -> dict[str, Any]:
        color = styles[g][0]
        if hollow(g):
            return {"facecolors": "none", "edgecolors": color, "linewidths": 1.6}
        return {"color": color, "edgecolors": "white", "linewidths": 0.6}

    key_ax = None
    if wide:  # a column beside the axes lists what the numbered points are
        fig = _figure(12.5, 5.2)
        grid = fig.add_gridspec(1, 2, width_ratios=[3.1, 1])
        ax = fig.add_subplot(grid[0])
        key_ax = fig.add_subplot(grid[1])
        key_ax.axis("off")
    else:
        fig = _figure(9.5, 5.2)
        ax = fig.add_subplot()
    for g in groups if len(groups) > 1 else []:
        ax.scatter([], [], marker=styles[g][1] if plain else "o", label=" · ".join(g), **paint(g))
    for g in groups:
        for kind in kinds:
            pts = [c for c in points if group(c) == g and c["kind"] == kind]
            if pts:
                ax.scatter([c[x_key] for c in pts], [c["accuracy"] for c in pts], s=46, marker=marker(pts[0]),
                           zorder=3, **paint(g))
    for dataset in datasets:
        mine = [c for c in points if str(c["dataset"]) == dataset]
        if front:
            best = sorted((c for c in mine if c["pareto"]), key=lambda c: c[x_key])
            if best:  # a dataset's front spans its runs: its line takes the dataset's colour, or grey
                xs, ys = [c[x_key] for c in best], [c["accuracy"] for c in best]
                color = "0.35" if len(runs) > 1 else styles[group(best[0])][0]
                ax.step(xs, ys, where="post", color=color, linewidth=1.4, alpha=0.8, zorder=2)
                ax.scatter(xs, ys, s=130, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4,
                           label="Pareto front" if dataset == datasets[0] else None)
        else:  # connect each variant to its fp32 model
            by_job: dict[Any, list[dict[str, Any]]] = {}
            for c in mine:  # a joined report can hold one job id once per run
                by_job.setdefault((c.get("run"), c["job"]), []).append(c)
            for exports in by_job.values():
                fp32 = next((c for c in exports if c["kind"] == "fp32"), None)
                for c in exports:
                    if fp32 is not None and c is not fp32:
                        ax.plot([fp32[x_key], c[x_key]], [fp32["accuracy"], c["accuracy"]], color=JOIN_GREY,
                                linewidth=0.8, zorder=1)
    for kind in kinds:
        if kind != "fp32" or len(kinds) > 1:
            ax.scatter([], [], marker=variant_marker(kind, kinds), color="0.45", label=kind)
    xs = [c[x_key] for c in points]
    ax.margins(x=0.08, y=0.06)
    if max(xs) / min(xs) > 4:  # spread over decades: log scale; else linear reads better
        ax.set_xscale("log")
        _plain_log_axis(ax, "x")
        xlabel += ", log scale"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (ONNX Runtime)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=8, loc="best") if ax.get_legend_handles_labels()[0] else None
    fig.draw_without_rendering()  # runs the layout and picks the legend's place
    fig.set_layout_engine("none")
    if legend is not None:  # "best" would look again at the labels drawn later, and might move onto one
        box = legend.get_window_extent(fig.canvas.get_renderer())
        # drawn again at the place it took (Legend.set_loc is matplotlib 3.8+; 3.7 is supported)
        ax.legend(fontsize=8, loc=tuple(ax.transAxes.inverted().transform((box.x0, box.y0))))
    return fig, ax, key_ax


@dataclass
class _Room:
    """What is already on a scatter's axes, in pixels, that a new label must keep clear of.

    ``boxes``: (x0, y0, x1, y1) a label may not cover (markers, the legend, labels); ``texts``: those a
    leader line may not cross (the legend, labels); ``leaders``: (x0, y0, x1, y1) leader lines drawn.
    """

    boxes: list[tuple[float, float, float, float]]
    texts: list[tuple[float, float, float, float]]
    leaders: list[tuple[float, float, float, float]] = field(default_factory=list)


def _crossing(segments: Any, boxes: Any) -> Any:
    """(k, m) bool: whether each of ``segments`` (k, 4: x0 y0 x1 y1) passes through each of ``boxes`` (m, 4)."""
    import numpy as np

    ax_, ay = segments[:, 0:1], segments[:, 1:2]
    dx, dy = segments[:, 2:3] - ax_, segments[:, 3:4] - ay
    low, high = np.zeros((len(segments), len(boxes))), np.ones((len(segments), len(boxes)))
    inside = np.ones_like(low, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, q in ((-dx, ax_ - boxes[None, :, 0]), (dx, boxes[None, :, 2] - ax_),
                     (-dy, ay - boxes[None, :, 1]), (dy, boxes[None, :, 3] - ay)):
            p = np.broadcast_to(p, low.shape)
            t = q / p
            inside &= ~((p == 0) & (q < 0))
            low = np.where(p < 0, np.maximum(low, t), low)
            high = np.where(p > 0, np.minimum(high, t), high)
    return inside & (low <= high)


CHUNK_CELLS = 1 << 20  # (candidate x box) pairs compared at once: bounds _spot's memory on a crowded plot
FALLBACK_CORNERS = 6000  # a crowded scatter's (see LABEL_LIMIT) "anywhere" grid: at most this many corners


def _chunks(n: int, m: int) -> Any:
    """Slices of ``range(n)`` whose (rows x ``m``) comparisons stay within :data:`CHUNK_CELLS`."""
    size = max(1, CHUNK_CELLS // max(m, 1))
    return (slice(a, min(a + size, n)) for a in range(0, n, size))


def _spot(size: tuple[float, float], at: tuple[float, float], room: _Room, area: tuple[float, float, float, float],
          preferred: list[tuple[float, float]], reach: float | None, pt: float, others: Any,
          strict: bool, max_corners: int | None = None) -> tuple[float, float, bool] | None:
    """Where a ``size`` (w, h) label of the point ``at`` goes: ``(x0, y0, leader)``, its lower-left corner in
    pixels and whether it needs a leader line to its point; None if nowhere.

    A spot is free when the label lies inside ``area`` and clear of ``room``'s boxes. The ``preferred``
    corners are taken first, in order, when free and plainly their own point's (nearer it than any of the
    ``others``, an (m, 2) array of the other points) with no leader line through them; else the free
    corner of a grid around the point out to ``reach`` pixels from it (None: anywhere in ``area``, on a
    grid of ``max_corners`` corners at most when given) that is nearest the point. A spot nearer another
    point is left out when ``strict``, else counts as further away (and gets a leader line, as a far one
    does); one that a drawn leader line crosses, or whose own would cross a text, counts as much further
    away.

    Only the candidates still free are tested further, against the boxes and points near enough to
    matter, a chunk at a time: the answer is the one every pair compared would give, at a cost that grows
    with what is near the point rather than with everything on the plot.
    """
    import numpy as np

    w, h = size
    px, py = at
    x0_area, y0_area, x1_area, y1_area = area
    step = GRID_STEP * pt
    if reach is None:
        if max_corners:
            cells = max(x1_area - w - x0_area, 0) / step * max(y1_area - h - y0_area, 0) / step
            if cells > max_corners:
                step *= math.sqrt(cells / max_corners)
        xs = np.arange(x0_area, x1_area - w, step)
        ys = np.arange(y0_area, y1_area - h, step)
    else:
        xs = px + np.arange(-reach - w, reach, step)
        ys = py + np.arange(-reach - h, reach, step)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    corners = np.concatenate([np.asarray(preferred, dtype=float).reshape(-1, 2), grid])
    x0, y0 = corners[:, 0], corners[:, 1]
    x1, y1 = x0 + w, y0 + h
    ok = (x0 >= x0_area) & (y0 >= y0_area) & (x1 <= x1_area) & (y1 <= y1_area)
    dist = np.hypot(np.maximum(np.maximum(x0 - px, px - x1), 0), np.maximum(np.maximum(y0 - py, py - y1), 0))
    if reach is not None:
        ok &= dist <= reach
    idx = np.flatnonzero(ok)
    if room.boxes and len(idx):  # a box clear of every candidate's rectangle cannot clash with one
        t = np.asarray(room.boxes, dtype=float)
        t = t[(t[:, 0] - LABEL_PAD < x1[idx].max()) & (t[:, 2] + LABEL_PAD > x0[idx].min())
              & (t[:, 1] - LABEL_PAD < y1[idx].max()) & (t[:, 3] + LABEL_PAD > y0[idx].min())]
        if len(t):
            for part in _chunks(len(idx), len(t)):
                k = idx[part]
                clash = ((x0[k, None] < t[None, :, 2] + LABEL_PAD) & (x1[k, None] > t[None, :, 0] - LABEL_PAD)
                         & (y0[k, None] < t[None, :, 3] + LABEL_PAD) & (y1[k, None] > t[None, :, 1] - LABEL_PAD))
                ok[k[clash.any(axis=1)]] = False
            idx = np.flatnonzero(ok)
    ambiguous = np.zeros_like(dist, dtype=bool)
    if len(others) and len(idx):
        # another point counts only within a spot's own distance (plus AMBIGUOUS_BY) of it
        radius = dist[idx].max() + AMBIGUOUS_BY * pt
        o = np.asarray(others, dtype=float).reshape(-1, 2)
        o = o[(o[:, 0] > x0[idx].min() - radius) & (o[:, 0] < x1[idx].max() + radius)
              & (o[:, 1] > y0[idx].min() - radius) & (o[:, 1] < y1[idx].max() + radius)]
        if len(o):
            ox, oy = o[:, 0][None, :], o[:, 1][None, :]
            for part in _chunks(len(idx), len(o)):
                k = idx[part]
                near = np.hypot(np.maximum(np.maximum(x0[k, None] - ox, ox - x1[k, None]), 0),
                                np.maximum(np.maximum(y0[k, None] - oy, oy - y1[k, None]), 0)).min(axis=1)
                ambiguous[k] = near < dist[k] + AMBIGUOUS_BY * pt
    if strict:
        ok &= ~ambiguous
    crossed = np.zeros_like(ok)  # a leader line through the label, or its own through another's text
    if room.leaders and ok.any():
        pad = np.array([-LABEL_PAD, -LABEL_PAD, LABEL_PAD, LABEL_PAD])
        idx = np.flatnonzero(ok)
        rects = np.stack([x0[idx], y0[idx], x1[idx], y1[idx]], axis=1) + pad
        leaders = np.asarray(room.leaders)
        for part in _chunks(len(idx), len(leaders)):
            crossed[idx[part]] = _crossing(leaders, rects[part]).any(axis=0)
    leader = (dist > LEADER_BEYOND * pt) | ambiguous
    check = ok & leader
    if room.texts and check.any():
        segments = np.stack([(x0 + x1)[check] / 2, (y0 + y1)[check] / 2,
                             np.full(check.sum(), px), np.full(check.sum(), py)], axis=1)
        texts = np.asarray(room.texts)
        hit = np.zeros(len(segments), dtype=bool)
        for part in _chunks(len(segments), len(texts)):
            hit[part] = _crossing(segments[part], texts).any(axis=1)
        crossed[check] |= hit
    free = np.flatnonzero(ok)
    if not len(free):
        return None
    clear = free[(free < len(preferred)) & ~ambiguous[free] & ~crossed[free]]
    if len(clear):
        first = clear[0]
    else:  # the nearest, level with the point on a tie; a line crossing text only where nothing else is free
        cost = (dist[free] + 0.05 * np.abs((y0[free] + y1[free]) / 2 - py)
                + (ambiguous[free] * AMBIGUOUS_COST + crossed[free] * CROSSING_COST) * pt)
        first = free[int(np.argmin(cost))]
    return float(x0[first]), float(y0[first]), bool(leader[first])


def _place_labels(fig: Any, ax: Any, points: list[dict[str, Any]], x_key: str, front: bool,
                  todo: list[tuple[int, str, bool]], room: _Room,
                  sides: dict[int, tuple[bool, bool]], crowded: bool = False) -> tuple[list[_Label], list[int]]:
    """Draw each ``(index, text, number)`` of ``todo`` at a free spot beside its point (see :func:`_spot`).

    ``room`` grows with every label drawn; ``sides`` holds each point's preferred ``(left, below)``;
    ``crowded`` (more than :data:`LABEL_LIMIT` points) looks for a number's spot "anywhere" on a coarser grid.
    Returns the labels drawn and the indices of names that found no free spot nearby (a number is always
    drawn: further out when it must, and at the least crowded spot near its point when nothing is free).
    """
    import numpy as np
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72
    bbox = ax.bbox
    area = (bbox.x0 + 2, bbox.y0 + 2, bbox.x1 - 2, bbox.y1 - 2)
    where = ax.transData.transform([(c[x_key], c["accuracy"]) for c in points])
    drawn, missed = [], []
    for index, text, number in todo:
        c = points[index]
        px, py = where[index]
        style = {"fontsize": 6 if number else 7, "color": "0.4" if number else "0.2", "ha": "left",
                 "va": "bottom", "textcoords": "offset points", "annotation_clip": False}
        probe = ax.annotate(text, (c[x_key], c["accuracy"]), xytext=(0, 0), **style)
        extent = Text.get_window_extent(probe, renderer)
        probe.remove()
        w, h = extent.width, extent.height
        left, below = sides.get(index, (False, False))
        half = RING_HALF if front and c.get("pareto") else MARKER_HALF
        gap_x = max(GAP_X, half + 1.5) * pt
        preferred = []
        for sx in ((-1, 1) if left else (1, -1)):
            for sy in ((-1, 1) if below else (1, -1)):
                preferred.append((px + gap_x if sx > 0 else px - gap_x - w,
                                  py + GAP_Y * pt if sy > 0 else py - GAP_Y * pt - h))
        others = np.delete(where, index, axis=0)
        spot = None
        for reach in ((NAME_REACH,) if not number else (NAME_REACH, NUMBER_REACH, None)):
            spot = _spot((w, h), (px, py), room, area, preferred, None if reach is None else reach * pt, pt,
                         others, strict=not number, max_corners=FALLBACK_CORNERS if crowded else None)
            if spot is not None:
                break
        if spot is None and number:  # nothing free anywhere: the spot nearby that covers the fewest others
            spot = _least_crowded((w, h), (px, py), room.boxes, pt)
        if spot is None:
            missed.append(index)
            continue
        x0, y0, leader = spot
        if leader:  # far from its point, or as near another: a thin line says whose label it is
            style["arrowprops"] = {"arrowstyle": "-", "color": JOIN_GREY, "lw": 0.5, "shrinkA": 0, "shrinkB": half - 0.5}
            room.leaders.append((x0 + w / 2, y0 + h / 2, px, py))
        artist = ax.annotate(text, (c[x_key], c["accuracy"]), xytext=((x0 - px) / pt, (y0 - py) / pt), **style)
        artist.set_in_layout(False)
        room.boxes.append((x0, y0, x0 + w, y0 + h))
        room.texts.append((x0, y0, x0 + w, y0 + h))
        drawn.append(_Label(index, text, number, artist))
    return drawn, missed


def _least_crowded(size: tuple[float, float], at: tuple[float, float], taken: list[tuple[float, float, float, float]],
                   pt: float) -> tuple[float, float, bool]:
    """A spot (as :func:`_spot` gives it) near ``at`` where a ``size`` label overlaps the fewest of ``taken``:
    of the offsets up to 12 points each way in steps of 2, the fewest overlaps, then the nearest (in steps
    across plus up), then the lowest, then the leftmost."""
    import numpy as np

    w, h = size
    px, py = at
    dy, dx = (a.ravel() for a in np.meshgrid(np.arange(-12, 13, 2), np.arange(-12, 13, 2), indexing="ij"))
    x0, y0 = px + dx * pt - w / 2, py + dy * pt - h / 2
    hits = np.zeros(len(dx), dtype=int)
    if taken:
        t = np.asarray(taken, dtype=float)
        t = t[(t[:, 0] < x0.max() + w) & (t[:, 2] > x0.min()) & (t[:, 1] < y0.max() + h) & (t[:, 3] > y0.min())]
        if len(t):
            hits = ((x0[:, None] < t[None, :, 2]) & (x0[:, None] + w > t[None, :, 0])
                    & (y0[:, None] < t[None, :, 3]) & (y0[:, None] + h > t[None, :, 1])).sum(axis=1)
    first = np.lexsort((dx, dy, np.abs(dx) + np.abs(dy), hits))[0]
    return float(x0[first]), float(y0[first]), True


def _draw_scatter(cands: list[dict[str, Any]], x_key: str, xlabel: str,
                  title: str, front: bool) -> tuple[Any, list[_Label], list[tuple[int, str]], int, int] | None:
    """The scatter's figure, its labels, its key, and how many of how many points have no label:
    ``(fig, labels, key, unlabelled, points)``; None when no point has both figures.

    The points labelled are all of a few, else :data:`LABEL_LIMIT` chosen by :func:`_chosen` (the others
    are plain markers, and the key says how many). Which of them get their name comes from
    :func:`_point_names`; each name is then placed where it covers no other label, marker or the legend and
    reads as its own point's, and a name with no such spot nearby turns its point into a number, like the
    points a crowded plot does not name. Numbers run left to right; ``key`` lists them all.
    """
    points = [c for c in cands if c["accuracy"] is not None and c[x_key] is not None and c[x_key] > 0]
    if not points:
        return None
    chosen = _chosen(points, x_key, front)
    crowded = len(chosen) < len(points)
    sub_names, sub_numbered, _ = _point_names([points[i] for i in chosen], x_key, front)
    names = {chosen[i]: text for i, text in sub_names.items()}
    numbered = {chosen[i] for i in sub_numbered}
    named = sorted((i for i in names if i not in numbered), key=lambda i: points[i][x_key])
    right_end = max(c[x_key] for c in points)

    def sides(chosen: list[int]) -> dict[int, tuple[bool, bool]]:
        # As before: the rightmost points' labels go to their left, so they do not run off the plot's edge,
        # and neighbours alternate above and below.
        return {i: (len(chosen) > 1 and points[i][x_key] >= right_end * 0.5, n % 2 == 1)
                for n, i in enumerate(chosen)}

    # The Pareto points' names first, then the most accurate.
    order = sorted(named, key=lambda i: (not (front and points[i].get("pareto")), -points[i]["accuracy"],
                                         points[i][x_key]))
    wide = len(named) < len(points)
    while True:
        fig, ax, key_ax = _scatter_axes(points, x_key, xlabel, title, front, wide)
        room = _point_boxes(fig, ax, points, x_key, front)
        labels, missed = _place_labels(fig, ax, points, x_key, front, [(i, names[i], False) for i in order],
                                       room, sides(named), crowded)
        if missed and not wide:  # a name that found no room: its point is numbered, so the plot needs a key
            wide = True
            continue
        break
    rest = sorted((i for i in range(len(points)) if i in numbered or i in missed),
                  key=lambda i: (points[i][x_key], -points[i]["accuracy"]))
    key = [(number, str(points[i]["label"])) for number, i in enumerate(rest, 1)]
    labels += _place_labels(fig, ax, points, x_key, front, [(i, str(n), True) for n, i in enumerate(rest, 1)],
                            room, sides(rest), crowded)[0]
    unlabelled = len(points) - len(chosen)
    if key_ax is not None and (key or unlabelled):
        note = _unlabelled_lines(unlabelled, len(points)) if unlabelled else []
        lines = _key_lines(key, KEY_LINES - (len(note) + 1 if note else 0)) if key else []
        key_ax.text(0.0, 1.0, "\n".join(lines + ([""] if lines and note else []) + note), va="top", ha="left",
                    fontsize=6.5, family="monospace", color="0.2", transform=key_ax.transAxes)
    return fig, labels, key, unlabelled, len(points)


def _unlabelled_lines(unlabelled: int, points: int) -> list[str]:
    """The key's note on a scatter of more than :data:`LABEL_LIMIT` points: how many are plain markers."""
    return textwrap.wrap(f"{unlabelled} of the {points} points are unlabelled (plain markers; labelled: the "
                         f"{LABEL_LIMIT} Pareto, best per model, most accurate). results.csv and the report's "
                         "tables list every job.", KEY_WIDTH + 5)


def unlabelled_note(unlabelled: int, points: int) -> str:
    """The reports' sentence under a scatter some of whose points carry no name or number."""
    return (f"{unlabelled} of the plot's {points} points are drawn without a name or number: a scatter labels "
            f"{LABEL_LIMIT} at most (its Pareto points, then each model's best, then the most accurate). "
            "results.csv and the tables list every job.")


def _point_boxes(fig: Any, ax: Any, points: list[dict[str, Any]], x_key: str, front: bool) -> _Room:
    """What a label must keep clear of before any is drawn: every marker (and Pareto ring), and the legend."""
    pt = fig.dpi / 72
    boxes = []
    for c in points:
        px, py = ax.transData.transform((c[x_key], c["accuracy"]))
        half = (RING_HALF if front and c.get("pareto") else MARKER_HALF) * pt
        boxes.append((px - half, py - half, px + half, py + half))
    texts = []
    legend = ax.get_legend()
    if legend is not None:
        box = legend.get_window_extent(fig.canvas.get_renderer())
        texts.append((box.x0, box.y0, box.x1, box.y1))
    return _Room(boxes + texts, texts)


def _scatter(cands: list[dict[str, Any]], x_key: str, xlabel: str, title: str, front: bool) -> Drawing | None:
    """Accuracy against ``x_key``, one point per candidate; None when no candidate has both figures."""
    drawn = _draw_scatter(cands, x_key, xlabel, title, front)
    if drawn is None:
        return None
    fig, _, key, unlabelled, points = drawn
    return Drawing(_png(fig), key, unlabelled, points)


def plot_accuracy_vs_latency(results: dict[str, Any]) -> Drawing | None:
    cands = candidates(results)
    where = {(c["batch_size"], c["threads"]) for c in cands if c["p50_ms"] is not None}
    at = "batch 1, 1 thread" if where == {(1, 1)} else "smallest batch, fewest threads"
    return _scatter(cands, "p50_ms", f"p50 latency, ms (ONNX Runtime CPU, {at})",
                    "Accuracy vs latency (up and left is better; ringed: Pareto front)", front=True)


def plot_accuracy_vs_size(results: dict[str, Any]) -> Drawing | None:
    cands = [{**c, "kib": c["bytes"] / 1024 if c["bytes"] else None} for c in candidates(results)]
    return _scatter(cands, "kib", "ONNX file size, KiB", "Accuracy vs size", front=False)


def plot_accuracy_vs_flops(results: dict[str, Any]) -> Drawing | None:
    """Each finished job's fp32 export against its FLOPs per sample, with the accuracy/compute front per
    dataset (variants do the same arithmetic, so they would only stack on their job)."""
    return _scatter(compute_candidates(results), "mflops", "MFLOPs per sample (convolutions, matrix products, attention, recurrent layers)",
                    "Accuracy vs compute (up and left is better; ringed: Pareto front)", front=True)


SERIES_LIMIT = 40
"""Lines the latency figure colours and names in its legend at most (the most that keep a colour, marker and
line style of their own, and a legend inside the image). A sweep with more series draws the Pareto models' and
then the most accurate ones so; the others are thin grey lines without a legend entry, counted in the legend."""


def plot_latency_vs_batch(results: dict[str, Any]) -> bytes | None:
    from matplotlib.ticker import NullFormatter

    joined = is_joined(results)
    several = len({j.get("dataset") for j in results["jobs"]}) > 1
    # A seed sweep's jobs are one model timed again: one line each, the median over its seeds, or 72 jobs
    # drew 72 tangled lines and a legend that squeezed both panels.
    groups: dict[tuple[Any, ...], list[tuple[dict[str, Any], int, list[dict[str, Any]]]]] = {}
    for job in results.get("jobs", []):
        rows = [r for r in job.get("latency") or [] if r.get("runtime") == ORT and r.get("provider") == CPU
                and _number(r.get("p50_ms")) is not None and r.get("batch_size")]
        if not rows:
            continue
        fewest = min(r.get("threads") or 0 for r in rows)
        rows = sorted((r for r in rows if (r.get("threads") or 0) == fewest), key=lambda r: r["batch_size"])
        groups.setdefault((*seed_group(job), fewest), []).append((job, fewest, rows))
    series = []
    for members in groups.values():
        job, fewest, rows = members[0]
        if len(members) == 1:
            series.append((job_label(job, dataset=several, run=joined), fewest, rows))
            continue
        unseeded = {**job, "point": seedless_point(job) or None}
        series.append((f"{job_label(unseeded, dataset=several, run=joined)} (median of {len(members)} seeds)",
                       fewest, _median_rows([rows for _, _, rows in members])))
    sizes = sorted({r["batch_size"] for _, _, rows in series for r in rows})
    if len(sizes) < 2:  # one batch size: a column of dots that says no more than the latency table
        return None
    shown = set(range(len(series)))
    if len(series) > SERIES_LIMIT:
        pareto = {(c.get("run"), c["job"]) for c in candidates(results) if c["kind"] == "fp32" and c["pareto"]}
        rank = []
        for n, members in enumerate(groups.values()):
            accuracies = [a for a in (accuracy_of(job) for job, _, _ in members) if a is not None]
            front = any((job.get("run_id") if joined else None, job.get("id")) in pareto for job, _, _ in members)
            rank.append((not front, -(_median(accuracies) if accuracies else -1.0), n))
        shown = {n for _, _, n in sorted(rank)[:SERIES_LIMIT]}
    hidden = len(series) - len(shown)
    # A legend row per series: more than about 24 rows need a taller figure to stay inside it.
    fig = _figure(13, max(4.6, 1.0 + 0.15 * (len(shown) + (1 if hidden else 0))))
    left, right = fig.subplots(1, 2)
    for label, threads, rows in (s for n, s in enumerate(series) if n not in shown):  # beneath the named ones
        style = {"color": BACKGROUND_GREY, "linewidth": 0.6, "zorder": 1}
        left.plot([r["batch_size"] for r in rows], [r["p50_ms"] for r in rows], **style)
        through = [(r["batch_size"], _number(r.get("throughput_per_s"))) for r in rows]
        through = [(b, t) for b, t in through if t]
        if through:
            right.plot([b for b, _ in through], [t for _, t in through], **style)
    named = [s for n, s in enumerate(series) if n in shown]
    for (label, threads, rows), (color, marker, line) in zip(named, _series_styles(len(named))):
        style = {"color": color, "marker": marker, "linestyle": line, "markersize": 5}
        sizes = [r["batch_size"] for r in rows]
        left.plot(sizes, [r["p50_ms"] for r in rows], label=f"{_short(label)} (t{threads})", **style)
        through = [(r["batch_size"], _number(r.get("throughput_per_s"))) for r in rows]
        through = [(b, t) for b, t in through if t]
        if through:
            right.plot([b for b, _ in through], [t for _, t in through], **style)
    if hidden:  # one legend entry for all the grey lines (an empty line: it draws nothing on the axes)
        left.plot([], [], color=BACKGROUND_GREY, linewidth=0.8, label=f"{hidden} more, in grey (the latency table lists each)")
    for ax, ylabel in ((left, "p50 ms per batch, log scale"),
                       (right, "samples per second (batch / mean latency), log scale")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        _plain_log_axis(ax, "y")
        ax.set_xlabel("batch size, log scale")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    left.set_title("Latency (ONNX Runtime CPU)", fontsize=11)
    right.set_title("Throughput", fontsize=11)
    fig.legend(fontsize=7, loc="outside right upper", handlelength=3)
    return _png(fig)


def _median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values))


def _median_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per batch size, the median p50 and throughput of several jobs' latency rows."""
    import statistics

    by_batch: dict[int, list[dict[str, Any]]] = {}
    for rows in runs:
        for row in rows:
            by_batch.setdefault(row["batch_size"], []).append(row)
    out = []
    for batch, rows in sorted(by_batch.items()):
        through = [t for t in (_number(r.get("throughput_per_s")) for r in rows) if t]
        out.append({"batch_size": batch, "p50_ms": statistics.median(float(r["p50_ms"]) for r in rows),
                    "throughput_per_s": statistics.median(through) if through else None})
    return out


def plot_curves(job: dict[str, Any]) -> bytes | None:
    history = [r for r in _get(job, "train", "history") or [] if isinstance(r, dict) and r.get("epoch") is not None]
    if len({r["epoch"] for r in history}) < 2:  # one epoch is a dot per line: its table says it (see to_html)
        return None
    evaluated = _get(job, "train", "evaluated_on") or "eval"
    fig = _figure(6.4, 2.6, layout=None)  # fixed margins: one of these per job, and layout costs time
    fig.subplots_adjust(left=0.08, right=0.985, bottom=0.17, top=0.89, wspace=0.22)
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    for ax, key, title in ((loss_ax, "loss", "loss"), (acc_ax, "accuracy", "accuracy")):
        for prefix, style, label in (("train", "-", "train"), ("eval", "--", evaluated)):
            points = [(e, _number(r.get(f"{prefix}_{key}"))) for e, r in zip(epochs, history)]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                ax.plot([e for e, _ in points], [v for _, v in points], style, marker="o", markersize=3,
                        label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if len(epochs) < 12:
            ax.set_xticks(sorted(set(epochs)))
    if acc_ax.get_legend_handles_labels()[0]:
        acc_ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


CURVES_LIMIT = 24
"""Jobs whose training curves are drawn at most (each a figure of its own, about a quarter of a second): a
sweep of more jobs trained for several epochs draws the most accurate ones', and every job keeps its
per-epoch table."""
EMBED_CURVES = 12
"""Training-curve figures report.html embeds at most; a page with more links them from ``plots/`` (loaded as
they scroll into view), so it stays small. The other plots are always embedded."""


def _has_curves(job: dict[str, Any]) -> bool:
    """Whether :func:`plot_curves` draws ``job``: a history of two epochs or more."""
    try:
        history = _get(job, "train", "history") or []
        return len({r["epoch"] for r in history if isinstance(r, dict) and r.get("epoch") is not None}) >= 2
    except TypeError:  # a history that is no list of epochs: drawing it says what is wrong (render_plots)
        return True


def curve_jobs(results: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The jobs whose training curves are drawn, in the run's order, and how many jobs have curves to draw:
    all of up to :data:`CURVES_LIMIT`, else the most accurate that many (then the earliest)."""
    jobs = [job for job in results.get("jobs", []) if _has_curves(job)]
    if len(jobs) <= CURVES_LIMIT:
        return jobs, len(jobs)
    return most_accurate(jobs, CURVES_LIMIT), len(jobs)


def render_plots(results: dict[str, Any]) -> list[Plot]:
    """Every plot of the report, drawn once; a plot that raises keeps its error, the others are drawn."""
    from harness.manager import one_line

    jobs: list[tuple[str, str, str | None, Callable[[], Drawing | bytes | None]]] = [
        (key, title, None, (lambda f=f: f(results))) for key, title, f in (
            ("accuracy_vs_latency", PLOT_TITLES["accuracy_vs_latency"], plot_accuracy_vs_latency),
            ("accuracy_vs_size", PLOT_TITLES["accuracy_vs_size"], plot_accuracy_vs_size),
            ("accuracy_vs_flops", PLOT_TITLES["accuracy_vs_flops"], plot_accuracy_vs_flops),
            ("latency_vs_batch", PLOT_TITLES["latency_vs_batch"], plot_latency_vs_batch),
        )
    ]
    joined = is_joined(results)
    for job in curve_jobs(results)[0]:
        jobs.append((f"curves:{job.get('id')}", job_label(job, dataset=True, run=joined), str(job.get("id")),
                     (lambda j=job: plot_curves(j))))
    plots, used = [], set()
    for key, title, job_id, draw in jobs:
        stem = safe_name(key.replace("curves:", "curves_"))
        name, n = f"{stem}.png", 1
        while name.casefold() in used:  # curves_CNN and curves_cnn are one file on Windows and macOS
            n += 1
            name = f"{stem}_{n}.png"
        try:
            drawn = draw()
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the report
            plots.append(Plot(key, title, name, None, one_line(exc), job_id))
            continue
        if drawn is None:
            continue
        used.add(name.casefold())
        if isinstance(drawn, Drawing):
            plots.append(Plot(key, title, name, drawn.png, None, job_id, drawn.numbered, drawn.unlabelled,
                              drawn.points))
        else:
            plots.append(Plot(key, title, name, drawn, None, job_id))
    return plots


# -- HTML -----------------------------------------------------------------------------------------------------

CSS = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #d9dee7; --head: #eef1f6; --accent: #2f5fb3; --bg: #fff;
        --stripe: #fafbfd; --error: #a02020; --bad: #fbe9e9; --skip: #f3f3f3; --miss: #fdf6e3;
        color-scheme: light dark; }
/* A reader's dark setting: the page follows it (the plots keep their white ground, framed). */
@media screen and (prefers-color-scheme: dark) {
  :root { --fg: #e4e8ef; --muted: #aab3c2; --line: #3b4352; --head: #262d3a; --accent: #8db4ff; --bg: #15181e;
          --stripe: #1b1f27; --error: #ff9d9d; --bad: #4a2327; --skip: #23262c; --miss: #3b3320; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--fg); background: var(--bg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 6px 0; max-width: 1100px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.95em; }
.facts { color: var(--muted); }
.facts a { color: var(--accent); }
.facts a.bad { color: var(--error); font-weight: 600; }
nav { margin: 12px 0 4px; display: flex; flex-wrap: wrap; gap: 6px 14px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
/* A table scrolls in its own box: overflow-x alone would make that box the sticky header's container
   without ever scrolling it, so the header would leave with the page; with a height limit it stays in view. */
.scroll { overflow: auto; max-width: 100%; max-height: 80vh; margin: 6px 0 10px; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; position: sticky; top: 0; z-index: 1; font-size: 12px;
     box-shadow: 0 1px 0 var(--line); }
th.num { text-align: right; }
/* A row's first cell names it (a row header for screen readers), in the row's own look. */
tbody th { position: static; background: none; font-weight: 400; font-size: inherit; box-shadow: none; z-index: auto; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num.words { white-space: normal; min-width: 5.5em; }
tbody tr > :first-child { min-width: 150px; max-width: 260px; overflow-wrap: anywhere; }
tbody tr:nth-child(even) { background: var(--stripe); }
tr.failed > * { background: var(--bad); }
tr.skipped > * { background: var(--skip); color: var(--muted); }
tr.miss > * { background: var(--miss); }
td.error { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; max-width: 720px;
  overflow-wrap: anywhere; }
td.prose { min-width: 14em; max-width: 720px; overflow-wrap: anywhere; }
.vh { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
.note { color: var(--muted); font-size: 13px; }
figure { margin: 8px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 2px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(560px, 100%), 1fr)); gap: 14px 20px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px 4px; }
.card h3 { margin: 0 0 4px; font-size: 14px; word-break: break-word; }
details summary { cursor: pointer; color: var(--accent); font-size: 13px; }
.plot-error { color: var(--error); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
/* A phone: the width goes to the tables and plots, not the margins; a plot opens whole from its link. */
@media (max-width: 600px) {
  body { padding: 14px 10px 32px; }
  tbody tr > :first-child { min-width: 96px; }
  .card { padding: 6px 6px 2px; }
}
/* Paper and PDF cannot scroll a table's box: every row and column is laid out on the page (landscape, small
   type, figures free to wrap), folded parts open, and a row's failed/skipped shade kept. */
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { padding: 0; font-size: 11px; }
  nav { display: none; }
  .scroll { overflow: visible; max-height: none; }
  table { font-size: 8px; }
  th { position: static; box-shadow: none; font-size: 8px; }
  th, td { padding: 1px 3px; }
  td.num, td.num.words { white-space: normal; min-width: 0; }
  tbody tr > :first-child, td.prose { min-width: 0; }
  td.error { font-size: 8px; }
  tr, figure { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  tr > * { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  details::details-content { content-visibility: visible; display: contents; }
}
"""


def html_table(table: Table, error_column: int | None = None, label: str | None = None) -> str:
    """A ``<table>`` with every cell escaped; numeric columns right-aligned; rows classed by status.

    A row's first cell is its header (``<th scope="row">``: a screen reader names the row's model with each
    figure), a column's heading ``scope="col"``. The scrolling box is a region named ``label`` (the section or
    table title) that the keyboard reaches. A starred figure (:data:`UNSTABLE_MARK`) says "unstable" to a
    screen reader, which may not speak a ``*``. A column headed note(s) wraps as prose, not a figure.
    """
    prose = {i for i, h in enumerate(table.headers) if str(h).lower() in ("note", "notes")}

    def cls(i: int, cell: Any) -> str:
        if i in table.numeric:
            # a figure with words after it ("1.00x (alternating, unstable)") may wrap: unwrapped, it widened
            # the edge table until its note column went out of sight
            return ' class="num words"' if " (" in str(cell) else ' class="num"'
        if i == error_column:
            return ' class="error"'
        return ' class="prose"' if i in prose else ""

    def text(i: int, cell: Any) -> str:
        escaped = esc(cell)
        return _STARRED.sub(_SPOKEN_STAR, escaped) if i in table.numeric else escaped

    def cell(i: int, value: Any) -> str:
        tag, scope = ("th", ' scope="row"') if i == 0 else ("td", "")
        return f"<{tag}{scope}{cls(i, value)}>{text(i, value)}</{tag}>"

    num = ' class="num"'
    head = "".join(f'<th scope="col"{num if i in table.numeric else ""}>{esc(h)}</th>'
                   for i, h in enumerate(table.headers))
    body = []
    for n, row in enumerate(table.rows):
        row_class = table.classes[n] if n < len(table.classes) else ""
        attr = f' class="{esc(row_class)}"' if row_class in ("failed", "skipped", "miss") else ""
        body.append(f"<tr{attr}>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>")
    name = f' aria-label="{esc(label)}"' if label else ""
    return (f'<div class="scroll" tabindex="0" role="region"{name}><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


_STARRED = re.compile(r"(?<=[0-9x])" + re.escape(esc(UNSTABLE_MARK)) + r"(?![0-9A-Za-z])")
_SPOKEN_STAR = f'{esc(UNSTABLE_MARK)}<span class="vh"> (unstable)</span>'


def _figure_html(plot: Plot | None, caption: str = "", linked: bool = False) -> str:
    """A plot as a ``<figure>``: its image, the whole list of its numbered points, and ``caption``.

    The image links to its PNG file in ``plots/`` (written beside report.html by
    :func:`harness.report.write_reports`), to be opened at full size where the page shrinks it, as on a
    phone: browsers refuse to open a ``data:`` link from a page, so the embedded copy cannot serve.
    ``linked``: the image itself is that file too, loaded as it scrolls into view, not embedded (see
    :data:`EMBED_CURVES`).
    """
    if plot is None:
        return ""
    if plot.png is None:
        return f'<p class="plot-error">The plot "{esc(plot.title)}" could not be drawn: {esc(plot.error)}</p>'
    if plot.unlabelled:
        caption = (caption + " " if caption else "") + unlabelled_note(plot.unlabelled, plot.points)
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    listed = ""
    if plot.numbered:
        listed = (f"<details><summary>The {len(plot.numbered)} numbered points, in full</summary><pre>"
                  + "\n".join(f"{n:>4}  {esc(label)}" for n, label in plot.numbered) + "</pre></details>")
    # figcaption must be a figure's first or last child: the list goes between the image and it
    src = f'plots/{esc(plot.file_name)}" loading="lazy' if linked else plot.data_uri()
    return (f'<figure><a href="plots/{esc(plot.file_name)}"><img alt="{esc(plot.title)}" src="{src}">'
            f"</a>{listed}{cap}</figure>")


def _linked_facts(facts: list[str], failed: Table) -> list[str]:
    """The header ``facts``, escaped, with the ``N failed`` and ``N skipped`` counts (when not 0) made links
    to the section that lists those jobs, failures in the error colour: the header is where a reader learns
    that some jobs have no figures, and a muted count in a sentence is easy to read past."""
    out = [esc(f) for f in facts]
    for status, attr in (("failed", ' class="bad"'), ("skipped", "")):
        count = failed.classes.count(status)
        for n, fact in enumerate(out if count else []):
            out[n], found = re.subn(rf"(?<![\w.]){count} {status}\b",
                                    f'<a{attr} href="#failed">{count} {status}</a>', fact, count=1)
            if found:
                break
    return out


def to_html(results: dict[str, Any], plots: list[Plot] | None = None, run_dir: "str | Path | None" = None) -> str:
    """The whole page as a string (``plots`` drawn here when not given; ``run_dir``: the folder it goes in,
    which an unfinished run's resume command names)."""
    if plots is None:
        plots = render_plots(results)
    by_key = {p.key: p for p in plots}
    joined = is_joined(results)
    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)

    exported = export_notes(results)
    sections.append(("results", "Results", html_table(results_table(results), label="Results")
                     + f'<p class="note">{esc(results_note(results))}</p>'
                     + ("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in exported) + "</ul>" if exported else "")))
    failed = failed_table(results)
    if failed:  # right after the results: a reader looking for why a job has no figures finds it first
        heading = failed_heading(failed)
        sections.append(("failed", heading, html_table(failed, error_column=4, label=heading)))
    metrics = metrics_table(results)
    if metrics is not None:
        failures = "".join(f'<p class="note">{esc(line)}</p>' for line in metric_failures(results))
        sections.append(("metrics", "Metrics", f'<p class="note">{esc(metrics_note(results))}</p>' + html_table(metrics, label="Metrics")
                         + failures))
    seeds = seed_table(results)
    if seeds:
        sections.append(("seeds", "Seeds (mean ± standard deviation)",
                         f'<p class="note">{esc(SEEDS_NOTE)}</p>' + html_table(seeds, label="Seeds")))
    front = pareto_table(results)
    body = _figure_html(by_key.get("accuracy_vs_latency"),
                        "Each point is a finished job's ONNX model (variants as other markers), coloured by "
                        f"{'run and ' if joined else ''}dataset. "
                        "Ringed points and the step line: the Pareto front per dataset. In a crowded plot the points "
                        "without a name carry a number, listed beside it and, in full, under it.")
    body += ("<h3>Pareto front</h3>" + html_table(front, label="Pareto front")) if front else \
        '<p class="note">No finished job with both accuracy and latency.</p>'
    sections.append(("pareto", "Accuracy vs latency", body))
    if by_key.get("accuracy_vs_size"):
        varied = any(c["kind"] != "fp32" for c in candidates(results))  # else there are no grey lines
        sections.append(("size", "Accuracy vs ONNX size", _figure_html(
            by_key["accuracy_vs_size"], ("Grey lines join a job's variants to its fp32 export. " if varied else "")
            + "The figures: the Results table's ONNX KiB and accuracy ORT columns"
            + (", and the Variants table's." if varied else "."))))
    if by_key.get("accuracy_vs_flops"):
        compute_front = compute_front_table(results)
        sections.append(("compute", "Accuracy vs compute", _figure_html(
            by_key["accuracy_vs_flops"], "Each finished job's fp32 export at its FLOPs per sample (one forward pass; "
            "convolutions, matrix products, attention and recurrent layers, 2 per multiply-add). Ringed: the accuracy/compute "
            "front per dataset, listed below.")
            + ("<h3>Accuracy/compute front</h3>" + html_table(compute_front, label="Accuracy/compute front")
               if compute_front else "")))
    training = training_table(results)
    if training:
        sections.append(("training", "Training", f'<p class="note">{esc(training_note(results))}</p>' + html_table(training, label="Training")))
    cards = []
    drawn_curves = [p for p in plots if p.key.startswith("curves:") and p.png is not None]
    link_curves = len(drawn_curves) > EMBED_CURVES
    chosen, with_curves = curve_jobs(results)
    left_out = {id(job) for job in results.get("jobs", []) if _has_curves(job)} - {id(job) for job in chosen}
    for job in results.get("jobs", []):
        history = history_table(job)
        plot = by_key.get(f"curves:{job.get('id')}")
        if not history and plot is None:
            continue
        title = job_label(job, dataset=True, run=joined)
        peak = _number(_get(job, "train", "peak_memory_bytes"))
        grew = memory_growth(job["train"]) if isinstance(job.get("train"), dict) else None
        growth = "" if grew is None else f", {grew / 2**20:+,.0f} MiB while training"
        epochs = _get(job, "train", "epochs")
        facts = ", ".join(x for x in (
            f"{epochs} epoch{'' if epochs == 1 else 's'}" if epochs is not None else "",
            f"{seconds_text(_number(_get(job, 'train', 'seconds')))} s" if _number(_get(job, "train", "seconds")) else "",
            f"device {_get(job, 'train', 'device')}" if _get(job, "train", "device") else "",
            f"peak memory {peak / 2**20:,.0f} MiB{growth}" if peak else "") if x)
        cards.append(f'<div class="card"><h3>{esc(title)}</h3>'
                     + (f'<p class="note">{esc(facts)}</p>' if facts else "")
                     + _figure_html(plot, linked=link_curves)
                     + (f"<details{'' if plot or id(job) in left_out else ' open'}><summary>per-epoch figures</summary>"
                        f"{html_table(history, label=f'per-epoch figures: {title}')}</details>" if history else "")
                     + "</div>")
    if cards:
        note = "" if not left_out else (
            f'<p class="note">Curves are drawn for the {len(chosen)} most accurate of the {with_curves} jobs trained '
            f"for more than one epoch ({CURVES_LIMIT} at most); the other {len(left_out)} jobs' per-epoch figures are "
            "in their tables.</p>")
        sections.append(("curves", "Training curves", f'{note}<div class="grid">{"".join(cards)}</div>'))
    latency = latency_table(results)
    if latency or by_key.get("latency_vs_batch"):
        notes = latency_notes(results)
        body = _figure_html(by_key.get("latency_vs_batch"), "ONNX Runtime, CPU provider, fewest threads measured; the seeds of a "
                            "sweep point as one line, their median.")
        opened = " open" if len(latency.rows) <= 24 else ""
        # the note explains the table's columns: it folds away with the table
        body += (f"<details{opened}><summary>every latency measurement ({len(latency.rows)} rows)</summary>"
                 f'{html_table(latency, label="Latency measurements")}<p class="note">{esc(LATENCY_NOTE)}</p></details>')
        if notes:
            body += "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
        sections.append(("latency", "Latency", body))
    deployment = deployment_tables(results)
    if deployment:
        answers = "".join(f"<p><strong>{esc(line)}</strong></p>" for line in edge_lines(results))
        sections.append(("edge", "Edge deployment", f'<p class="note">{esc(EDGE_NOTE)}</p>' + answers + "".join(
            f"<h3>{esc(caption)}</h3>{html_table(table, label=caption)}"
            + (f'<p class="note">{esc(table.footnote)}</p>' if table.footnote else "") for caption, table in deployment)))
    variants = variants_table(results)
    if variants:
        sections.append(("variants", "Variants", f'<p class="note">{esc(VARIANTS_NOTE)}</p>'
                         + html_table(variants, label="Variants")))
    reference = reference_table(results)
    if reference:
        why = reference_notes(results)  # speed-ups shown as '-'
        sections.append(("reference", "Published reference figures",
                         f'<p class="note">{esc(REFERENCE_NOTE)}</p>' + html_table(reference, label="Published reference figures")
                         + ("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in why) + "</ul>" if why else "")))
    if results.get("reporter_errors"):
        sections.append(("reporter-errors", "Reporter errors",
                         "<ul>" + "".join(f"<li>{esc(e)}</li>" for e in results["reporter_errors"]) + "</ul>"))
    broken = [p for p in plots if p.png is None]
    body = html_table(environment_table(results), label="Environment")
    config = config_table(results)
    if config:
        body += "<h3>Run options</h3>" + html_table(config, label="Run options")
    if broken:
        body += "<h3>Plots not drawn</h3><ul>" + "".join(
            f"<li>{esc(p.title)}: {esc(p.error)}</li>" for p in broken) + "</ul>"
    sections.append(("environment", "Environment", body))

    title = f"harness run {results.get('run_id')}"
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in sections)
    facts = "".join(f'<p class="facts">{f}</p>' for f in _linked_facts(header_facts(results, run_dir), failed))
    main = "".join(f'<section id="{a}"><h2>{esc(t)}</h2>{b}</section>' for a, t, b in sections)
    version = (results.get("environment") or {}).get("harness", "")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body><header><h1>harness run <code>{esc(results.get('run_id'))}</code></h1>{facts}"
        f'<nav aria-label="Sections">{nav}</nav></header>\n<main>{main}</main>\n'
        f"<footer>Written by harness {esc(version)} from results.json; rebuild with "
        f"<code>harness report RUN_DIR</code>.</footer></body></html>\n"
    )


def write_html(run_dir: Path, results: dict[str, Any], plots: list[Plot] | None = None) -> Path:
    """Write ``run_dir/report.html`` (opens offline) and return its path.

    The page is self-contained unless it has more than :data:`EMBED_CURVES` training-curve figures: those it
    links from ``plots/``, and any of them not there yet (:func:`harness.report.write_reports` writes them
    all) are written here.
    """
    plots = render_plots(results) if plots is None else plots
    curves = [p for p in plots if p.key.startswith("curves:") and p.png is not None]
    for plot in curves if len(curves) > EMBED_CURVES else []:
        target = Path(run_dir) / "plots" / plot.file_name
        if not target.is_file() or target.read_bytes() != plot.png:
            atomic_write_bytes(target, plot.png)
    path = Path(run_dir) / "report.html"
    atomic_write_text(path, to_html(results, plots, run_dir))
    return path
