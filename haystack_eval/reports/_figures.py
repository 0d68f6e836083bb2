"""Drawing for ``heatmap``: matplotlib and seaborn live here, imported only when a figure is drawn.

Figures are ``matplotlib.figure.Figure`` objects on their own Agg canvas, never pyplot figures: no global figure
registry to leak into, no display needed, and separate threads can draw separate figures.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon, Rectangle
from matplotlib.ticker import FuncFormatter, NullLocator, PercentFormatter

Kind = Literal["value", "no-data", "unscored", "one-sided"]

# Red -> amber -> green, the scheme readers of needle-in-a-haystack plots expect; "cb" swaps in cividis. The
# orange and yellow-green stops keep the blends clean (amber straight into green turns olive around 2/3).
RAG = LinearSegmentedColormap.from_list(
    "haystack-rag", [(0.0, "#d73027"), (0.25, "#ee7d3a"), (0.5, "#f6bf3f"), (0.75, "#a5c94f"), (1.0, "#1a9850")])
_COLORMAPS: dict[str, Colormap | str] = {"rag": RAG, "cb": "cividis", "spread": "Purples", "diverging": "RdBu"}

# Inches per cell at full size: wide enough for "100%" or "10/10" at 8 pt, tall enough for one line.
_CELL_W, _CELL_H = 0.62, 0.30
_MARGIN_W, _MARGIN_H = 2.5, 2.1  # tick labels, axis labels, colourbar; title, legend and footnote
_MAX_INCHES = 30.0  # beyond this the PNG (300 dpi) gets unwieldy: cells shrink instead
_FONT = 8.0
_MIN_FONT = 4.0  # below this annotations are unreadable anyway, so huge grids go without them
_GRID_LINE = "white"
_INK_DARK, _INK_LIGHT = "#1a1a1a", "white"


@dataclass(frozen=True)
class Cell:
    """What one heatmap cell shows: a coloured value or a mark, its annotation, and whether trials were lost."""

    kind: Kind
    value: float = math.nan
    text: str = ""
    partial: bool = False  # some trials errored, were skipped or cut off: the value is over the rest


@dataclass(frozen=True)
class Scale:
    """The colour scale of a cell figure: colormap key, fixed limits, colourbar label, ticks and their format."""

    cmap: str
    vmin: float
    vmax: float
    label: str
    ticks: tuple[float, ...]
    tick_format: Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One line of a curves panel: points with their 95% band."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


@dataclass(frozen=True)
class _Mark:
    face: str
    hatch: str | None
    legend: str


_MARKS: dict[str, _Mark] = {
    "no-data": _Mark("#f2f2f2", "///", "no data"),
    "one-sided": _Mark("#f2f2f2", "xx", "in one run only"),
    "unscored": _Mark("#bdbdbd", None, "no scored trial (all errored, skipped, cut off or ungraded)"),
}
_HATCH_COLOUR = "#9a9a9a"
_PARTIAL_LEGEND = "some trials errored, were skipped or cut off (value is over the rest)"
# The partial mark is a small right triangle in the cell's top-right corner, like a spreadsheet note.
_PARTIAL_MARKER = [(-1, 1), (1, 1), (1, -1)]
_PARTIAL_INCHES = 0.11


def colormap(key: str) -> Colormap:
    """The colormap behind a palette key ("rag", "cb", "spread", "diverging")."""
    cmap = _COLORMAPS[key]
    return cmap if isinstance(cmap, Colormap) else matplotlib.colormaps[cmap]


def new_figure(width: float, height: float) -> Figure:
    """A white figure on its own Agg canvas, laid out by constrained layout (it places colourbar and legend)."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained", facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def cell_figure(rows: Sequence[Sequence[Cell]], *, xlabels: Sequence[str], ylabels: Sequence[str], title: str,
                subtitle: str, scale: Scale, footnote: str, xlabel: str, ylabel: str) -> Figure:
    """A seaborn heatmap of ``rows`` (top row first) with annotations, marks, a colourbar and a legend."""
    nrows, ncols = len(ylabels), len(xlabels)
    if not nrows or not ncols:
        return _empty(title, "no records to draw yet")
    # Shrink cells (and fonts) only when a full-size figure would exceed the size cap.
    shrink = min(1.0, (_MAX_INCHES - _MARGIN_W) / (ncols * _CELL_W), (_MAX_INCHES - _MARGIN_H) / (nrows * _CELL_H))
    font = _FONT * shrink
    width = max(6.4, ncols * _CELL_W * shrink + _MARGIN_W)
    height = max(4.0, nrows * _CELL_H * shrink + _MARGIN_H)
    figure = new_figure(width, height)
    figure.suptitle(_wrap(title, width, 11), fontsize=11)
    ax = figure.add_subplot()
    ax.set_title(_wrap(subtitle, width, 8), fontsize=8, color="#444444")
    cmap, norm = colormap(scale.cmap), Normalize(scale.vmin, scale.vmax)
    data = np.array([[c.value if c.kind == "value" else np.nan for c in row] for row in rows], dtype=float)
    sns.heatmap(data, mask=np.isnan(data), vmin=scale.vmin, vmax=scale.vmax, cmap=cmap, ax=ax, annot=False,
                linewidths=0.6, linecolor=_GRID_LINE, xticklabels=list(xlabels), yticklabels=list(ylabels),
                cbar_kws={"label": scale.label, "ticks": list(scale.ticks),
                          "format": FuncFormatter(lambda x, _pos: scale.tick_format(x))})
    # seaborn turns crowded labels; depth labels read best level, lengths level unless they are long.
    ax.tick_params(axis="y", labelrotation=0, labelsize=max(_MIN_FONT, font), length=0)
    ax.tick_params(axis="x", labelrotation=0, labelsize=max(_MIN_FONT, font), length=0)
    if max(map(len, xlabels)) > 5:  # exact fallbacks ("1,234,567") overlap when level
        for label in ax.get_xticklabels():
            label.set(rotation=45, horizontalalignment="right", rotation_mode="anchor")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    # The partial-trials notch is sized in inches, so it looks the same in wide and narrow cells.
    corner = (min(0.4, _PARTIAL_INCHES * ncols / (width - _MARGIN_W)),
              min(0.4, _PARTIAL_INCHES * nrows / (height - _MARGIN_H)))
    used: set[str] = set()
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            _draw_cell(ax, i, j, cell, cmap(norm(cell.value)) if cell.kind == "value" else None, font=font,
                       corner=corner)
            used.add(cell.kind)
            if cell.partial:
                used.add("partial")
    _legend(figure, used, footnote, width)
    return figure


def _draw_cell(ax: Axes, i: int, j: int, cell: Cell, colour: tuple[float, float, float, float] | None, *,
               font: float, corner: tuple[float, float]) -> None:
    """Marks and annotation of cell (row i, column j); seaborn cell (i, j) spans x j..j+1 and y i..i+1."""
    if colour is None:
        mark = _MARKS[cell.kind]
        # Hatches take the edge colour before matplotlib 3.11 (no hatchcolor): a grey edge of width 0 carries
        # the hatch, and a second, unfilled patch draws the white grid line the masked cell would lack.
        ax.add_patch(Rectangle((j, i), 1, 1, facecolor=mark.face, hatch=mark.hatch, edgecolor=_HATCH_COLOUR,
                               linewidth=0, label=f"_{cell.kind}"))
        ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor=_GRID_LINE, linewidth=0.6, label="_grid"))
        colour = to_rgba(mark.face)
    ink = _ink(colour)
    if cell.text and font >= _MIN_FONT:
        ax.text(j + 0.5, i + 0.5, cell.text, ha="center", va="center", fontsize=font, color=ink)
    if cell.partial:
        dx, dy = corner
        ax.add_patch(Polygon([(j + 1 - dx, i), (j + 1, i), (j + 1, i + dy)], closed=True, facecolor=ink,
                             edgecolor="none", label="_partial"))


def _ink(colour: tuple[float, float, float, float]) -> str:
    """Dark text on light cells, white on dark ones (relative luminance, WCAG weights)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in colour[:3])
    return _INK_DARK if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else _INK_LIGHT


def plain(text: str) -> str:
    """Text drawn as typed: "$" would start mathtext (and fail on one "$"); control characters have no glyph."""
    return "".join(ch for ch in text if ch.isprintable() or ch == "\n").replace("$", r"\$")


def _wrap(text: str, width: float, size: float) -> str:
    """Break a long line at " · " (then spaces) so it fits ``width`` inches at ``size`` points."""
    text = plain(text)
    chars = max(20, int(width * 72 / (size * 0.6)))
    if len(text) <= chars:
        return text
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= chars:
            lines[-1] += " · " + part
        else:
            lines.extend(textwrap.wrap(part, chars) or [""])
    return "\n".join(lines)


def _legend(figure: Figure, used: set[str], footnote: str, width: float) -> None:
    """Legend entries for the marks in use, under the plot, with the footnote as its title."""
    handles: list[Patch | Line2D] = []
    for kind, mark in _MARKS.items():
        if kind in used:
            handles.append(Patch(facecolor=mark.face, hatch=mark.hatch, edgecolor=_HATCH_COLOUR, label=mark.legend))
    if "partial" in used:
        handles.append(Line2D([], [], linestyle="none", marker=_PARTIAL_MARKER, markersize=7, color=_INK_DARK,
                              label=_PARTIAL_LEGEND))
    figure.legend(handles=handles, loc="outside lower center", ncols=1 if len(handles) > 2 else max(1, len(handles)),
                  frameon=False, fontsize=7, title=_wrap(footnote, width, 7), title_fontsize=7)


def _empty(title: str, message: str) -> Figure:
    figure = new_figure(6.4, 3.0)
    figure.suptitle(_wrap(title, 6.4, 11), fontsize=11)
    ax = figure.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555555")
    return figure


def curves(by_length: Sequence[Series], by_depth: Sequence[Series], *, length_ticks: Sequence[tuple[float, str]],
           log_x: bool) -> Figure:
    """Accuracy by length (left) and by depth (right), one line and 95% band per series, y fixed 0..1."""
    figure = new_figure(11.0, 4.4)
    left, right = figure.subplots(1, 2)
    colours = matplotlib.colormaps["tab10"].colors  # type: ignore[attr-defined]
    for ax, series in ((left, by_length), (right, by_depth)):
        for k, line in enumerate(series):
            colour = colours[k % len(colours)]
            ax.fill_between(line.x, line.low, line.high, color=colour, alpha=0.18, linewidth=0)
            ax.plot(line.x, line.y, marker="o", markersize=4, color=colour, label=plain(line.label))
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        ax.set_ylabel("accuracy")
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
    if log_x:
        left.set_xscale("log")
    left.set_xticks([x for x, _ in length_ticks], [label for _, label in length_ticks])
    left.xaxis.set_minor_locator(NullLocator())  # log axes add unlabeled minor ticks between our lengths
    left.set_xlabel("context length (tokens)")
    left.set_title("accuracy by context length", fontsize=10)
    right.set_xlim(-2, 102)
    right.set_xticks([0, 25, 50, 75, 100])
    right.xaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
    right.set_xlabel("needle depth (% of context)")
    right.set_title("accuracy by needle depth", fontsize=10)
    if any(by_length) or any(by_depth):
        handles, labels = left.get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), frameon=False,
                      fontsize=8, title="shaded: 95% Wilson interval", title_fontsize=7)
    return figure


def render(figure: Figure, fmt: Literal["png", "svg"], dpi: float | None = None) -> bytes:
    """The figure encoded as PNG or SVG bytes (the figure stays open)."""
    buffer = io.BytesIO()
    # A fixed hash salt and no date make SVG re-renders byte-identical; text as paths needs no font at view time.
    with matplotlib.rc_context({"svg.hashsalt": "haystack-eval", "svg.fonttype": "path"}):
        figure.savefig(buffer, format=fmt, dpi=dpi or figure.dpi, facecolor="white",
                       metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def close(figure: Figure) -> None:
    """Free a figure: unregister it from pyplot if it came from there, and drop its artists."""
    if getattr(figure.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(figure)
    figure.clear()
