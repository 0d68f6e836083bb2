"""Heatmaps of a run's grid: depth × length cells on a fixed 0..1 scale, differences between runs, marginal curves.

This module decides what each cell shows; ``_figures`` draws it. matplotlib and seaborn (slow to import) are
loaded on the first figure, so importing this module costs nothing for commands that draw none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from haystack_eval.reports.labels import length_label  # one labeller for ticks, report tables and summary.md
from haystack_eval.stats import CellStats, Grid, Share
from haystack_eval.sweep import Run
from haystack_eval.textfiles import write_atomic

if TYPE_CHECKING:
    from haystack_eval.reports._figures import Cell, Series

__all__ = ["PALETTES", "Palette", "curves_figure", "difference_figure", "heatmap_figure", "length_label",
           "title_for", "to_png", "to_svg", "write_heatmaps"]

Palette = Literal["rag", "cb"]  # red-amber-green, or colour-blind-safe
PALETTES: tuple[str, ...] = ("rag", "cb")

_SEP = " · "
_LENGTH_AXIS = "context length (tokens)"
_DEPTH_AXIS = "needle depth (% of context)"
_FORMATS: tuple[tuple[Literal["png", "svg"], int | None], ...] = (("png", 300), ("svg", None))
_UNSCORED = (("error", "error"), ("truncated", "cut off"), ("skipped", "skipped"), ("unscored", "unscored"))


def _depth_label(depth: float) -> str:
    return f"{round(depth, 1):g}%"


def _unique(labels: list[str], exact: list[str]) -> list[str]:
    """Short labels unless two of them collide (1200 and 1234 are both "1.2K"); then the exact ones."""
    return labels if len(set(labels)) == len(labels) else exact


def _length_labels(lengths: Sequence[int]) -> list[str]:
    return _unique([length_label(n) for n in lengths], [f"{n:,}" for n in lengths])


def _depth_labels(depths: Sequence[float]) -> list[str]:
    return _unique([_depth_label(d) for d in depths], [f"{d:.6g}%" for d in depths])


def _percent(mean: float) -> str:
    """A share as a whole percent that never claims 0% or 100% for a cell that is not all wrong or all right."""
    rounded = round(mean * 100)
    if mean < 1 and rounded == 100:
        rounded = 99
    elif mean > 0 and rounded == 0:
        rounded = 1
    return f"{rounded}%"


def _points(difference: float) -> str:
    """A signed difference in percentage points ("+12", "−5", "0"), with a true minus sign."""
    if difference == 0:
        return "0"
    return f"{difference * 100:+.0f}".replace("-", "\N{MINUS SIGN}")


def _lost(stats: CellStats) -> int:
    """Trials of a cell that are not in its mean (errors, skips, cut-off answers)."""
    return sum(stats.statuses.values()) - stats.share.n


def _unscored_text(stats: CellStats) -> str:
    """What a cell without a scored trial shows: its leading non-scored status."""
    return next((text for status, text in _UNSCORED if stats.statuses.get(status)), "n/a")


def _counts_apply(grid: Grid) -> bool:
    """Whether cells read best as "2/3": several trials, every score right-or-wrong (no partial credit)."""
    return grid.trials > 1 and all(s in (0.0, 1.0) for c in grid.cells.values() for s in c.scores)


def _heat_cell(stats: CellStats | None, value: str, counts: bool) -> Cell:
    from haystack_eval.reports._figures import Cell

    if stats is None:
        return Cell("no-data")
    if not stats.share.n:
        return Cell("unscored", text=_unscored_text(stats))
    partial = _lost(stats) > 0
    if value == "spread":
        width = stats.interval_width or 0.0
        return Cell("value", width, f"{width:.2f}", partial)
    mean = stats.share.total / stats.share.n
    text = f"{round(stats.share.total)}/{stats.share.n}" if counts else _percent(mean)
    return Cell("value", mean, text, partial)


def heatmap_figure(grid: Grid, *, title: str, palette: Palette = "rag", value: Literal["mean", "spread"] = "mean") -> Any:
    """A matplotlib Figure: depth on y (0 at top), length on x, fixed 0..1 scale, cells annotated,
    empty cells and cells with errors visibly marked. value='spread' draws the 95% interval width."""
    from haystack_eval.reports import _figures as fx

    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}: use one of {', '.join(PALETTES)}")
    if value not in ("mean", "spread"):
        raise ValueError(f"unknown value {value!r}: use 'mean' or 'spread'")
    counts = value == "mean" and _counts_apply(grid)
    rows = [[_heat_cell(grid.cell(n, d), value, counts) for n in grid.lengths] for d in grid.depths]
    trials = f"{grid.trials} trials per cell. " if grid.trials > 1 else ""
    if value == "spread":
        scale = fx.Scale("spread", 0.0, 1.0, "95% interval width", (0, 0.25, 0.5, 0.75, 1), lambda x: f"{x:.2f}")
        subtitle = "width of each cell's 95% Wilson interval (narrower is surer)"
        footnote = f"{trials}Intervals cover scored trials only; errors, skips and cut-off answers are left out."
    else:
        scale = fx.Scale(palette, 0.0, 1.0, "accuracy", (0, 0.25, 0.5, 0.75, 1), lambda x: f"{x * 100:.0f}%")
        subtitle = ""
        shown = "correct / scored trials" if counts else "share of correct answers"
        footnote = f"{trials}Cells: {shown}. Errors, skips and cut-off answers are kept out of the means."
    return fx.cell_figure(rows, xlabels=_length_labels(grid.lengths), ylabels=_depth_labels(grid.depths),
                          title=title, subtitle=subtitle, scale=scale, footnote=footnote, xlabel=_LENGTH_AXIS,
                          ylabel=_DEPTH_AXIS)


def _difference_cell(base: CellStats | None, other: CellStats | None) -> Cell:
    from haystack_eval.reports._figures import Cell

    if base is None and other is None:
        return Cell("no-data")
    before, after = (s.mean if s is not None else None for s in (base, other))
    if before is None and after is None:
        present = [s for s in (base, other) if s is not None]  # at least one: both None returned above
        return Cell("unscored", text=_unscored_text(present[0]))
    if before is None or after is None:
        return Cell("one-sided")
    partial = any(s is not None and _lost(s) > 0 for s in (base, other))
    return Cell("value", after - before, _points(after - before), partial)


def difference_figure(base: Grid, other: Grid, *, title: str) -> Any:
    """A Figure of other - base per cell on a diverging -1..1 scale (cells missing in either are marked)."""
    from haystack_eval.reports import _figures as fx

    lengths = sorted(set(base.lengths) | set(other.lengths))
    depths = sorted(set(base.depths) | set(other.depths))
    rows = [[_difference_cell(base.cell(n, d), other.cell(n, d)) for n in lengths] for d in depths]
    scale = fx.Scale("diverging", -1.0, 1.0, "accuracy change (percentage points)", (-1, -0.5, 0, 0.5, 1),
                     lambda x: _points(x))
    return fx.cell_figure(rows, xlabels=_length_labels(lengths), ylabels=_depth_labels(depths), title=title,
                          subtitle="other run minus base run, per cell (blue: better, red: worse)", scale=scale,
                          footnote="Cells show the change in accuracy in percentage points; only scored trials count.",
                          xlabel=_LENGTH_AXIS, ylabel=_DEPTH_AXIS)


def _series(label: str, shares: dict[float, Share]) -> Series:
    from haystack_eval.reports._figures import Series

    points = [(x, share.mean, *share.interval) for x, share in sorted(shares.items()) if share.mean is not None]
    x, y, low, high = (tuple(column) for column in zip(*points)) if points else ((), (), (), ())
    return Series(label, x, y, low, high)


def curves_figure(grids: Sequence[Grid], labels: Sequence[str]) -> Any:
    """A Figure with two panels: accuracy by length and accuracy by depth (one line per run, 95% bands)."""
    from haystack_eval.reports import _figures as fx

    if len(grids) != len(labels):
        raise ValueError(f"curves_figure needs one label per grid (got {len(grids)} grids, {len(labels)} labels)")
    by_length = [_series(label, {float(n): s for n, s in g.by_length.items()}) for g, label in zip(grids, labels)]
    by_depth = [_series(label, dict(g.by_depth)) for g, label in zip(grids, labels)]
    lengths = sorted({n for g in grids for n in g.lengths})
    # A log axis only pays off when lengths span an order of magnitude; short sweeps read better linear.
    log_x = bool(lengths) and lengths[0] > 0 and lengths[-1] / lengths[0] > 8
    ticks = list(zip((float(n) for n in lengths), _length_labels(lengths)))
    return fx.curves(by_length, by_depth, length_ticks=ticks, log_x=log_x)


def title_for(run: Run, grid: Grid) -> str:
    """'<model> · <task> · accuracy 93.2% · 2026-11-29' (model, task, overall accuracy, date)."""
    mean = grid.overall.mean
    parts = [run.model, run.task, f"accuracy {mean * 100:.1f}%" if mean is not None else "no scored cells"]
    day = re.match(r"\d{4}-\d{2}-\d{2}", run.date or "")
    if day:
        parts.append(day.group())
    return _SEP.join(parts)


def to_svg(figure: Any) -> str:
    """The figure as an SVG document string (for inlining in HTML); closes the figure."""
    from haystack_eval.reports import _figures as fx

    try:
        return fx.render(figure, "svg").decode("utf-8")
    finally:
        fx.close(figure)


def to_png(figure: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; closes the figure."""
    from haystack_eval.reports import _figures as fx

    try:
        return fx.render(figure, "png", dpi)
    finally:
        fx.close(figure)


def write_heatmaps(run: Run, out_dir: Path, *, palette: Palette = "rag") -> list[Path]:
    """Write heatmap.png (300 dpi) and heatmap.svg into out_dir, plus heatmap-spread.png/.svg for
    multi-trial runs; returns the paths written."""
    from haystack_eval.reports import _figures as fx

    grid = run.grid()
    title = title_for(run, grid)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    values: list[Literal["mean", "spread"]] = ["mean", "spread"] if grid.trials > 1 else ["mean"]
    written: list[Path] = []
    for value in values:
        stem = "heatmap" if value == "mean" else "heatmap-spread"
        figure = heatmap_figure(grid, title=title, palette=palette, value=value)
        try:
            for fmt, dpi in _FORMATS:
                path = out_dir / f"{stem}.{fmt}"
                write_atomic(path, fx.render(figure, fmt, dpi))
                written.append(path)
        finally:
            fx.close(figure)
    return written

