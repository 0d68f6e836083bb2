"""Heatmaps, checked by structure and by sampled pixels (no golden images): what a reader sees is what the grid says."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure
from PIL import Image

import haystack_eval
from haystack_eval.reports.heatmap import (
    PALETTES,
    curves_figure,
    difference_figure,
    heatmap_figure,
    length_label,
    title_for,
    to_png,
    to_svg,
    write_heatmaps,
)
from haystack_eval.stats import Grid, grid
from haystack_eval.sweep import Run

REPO = Path(__file__).resolve().parents[2]
LENGTHS = (1000, 2000, 4000)
DEPTHS = (0.0, 50.0, 100.0)
# (length, depth) -> score of the single trial; None is an error, a missing key is a cell without records.
SCORES: dict[tuple[int, float], float | None] = {
    (1000, 0.0): 0.0, (2000, 0.0): 0.5, (4000, 0.0): 1.0,
    (2000, 50.0): None, (4000, 50.0): 0.25,
    (1000, 100.0): 1.0, (2000, 100.0): 0.75, (4000, 100.0): 1.0,
}


def _record(length: int, depth: float, score: float | None, trial: int = 0) -> dict[str, Any]:
    if score is None:
        return {"length": length, "depth": depth, "trial": trial, "status": "error", "score": None,
                "error": {"class": "ServerError"}}
    return {"length": length, "depth": depth, "trial": trial, "status": "ok", "score": score}


def _known_grid() -> Grid:
    return grid(_record(n, d, s) for (n, d), s in SCORES.items())


def _multi_trial_grid() -> Grid:
    """Three trials a cell; (1000, 0) lost one trial to an error, (2000, 50) got 2 of 3 right."""
    records = [_record(n, d, 1.0, t) for n in (1000, 2000) for d in (0.0, 50.0) for t in range(3)]
    records[1] = _record(1000, 0.0, None, 1)
    records[-1] = _record(2000, 50.0, 0.0, 2)
    return grid(records)


def _run(tmp_path: Path, records: list[dict[str, Any]], **manifest: Any) -> Run:
    base = {"model": {"provider": "scripted", "name": "oracle"}, "config": {"task": {"kind": "single"}},
            "updated": "2026-11-29T08:15:00+00:00"}
    return Run(path=tmp_path, manifest={**base, **manifest}, records=tuple(records))


def _heat_axes(figure: Figure) -> Axes:
    return figure.axes[0]


def _texts(ax: Axes) -> dict[tuple[float, float], str]:
    """Annotations by the data position of their anchor (cell centres)."""
    return {(float(t.get_position()[0]), float(t.get_position()[1])): t.get_text() for t in ax.texts}


def _marks(ax: Axes, kind: str) -> list[tuple[float, float]]:
    """Top-left corners (data coordinates) of the patches drawn for one kind of mark."""
    boxes = [p.get_path().get_extents(p.get_patch_transform()) for p in ax.patches if p.get_label() == f"_{kind}"]
    return [(float(box.x0), float(box.y0)) for box in boxes]


def _cell_pixels(figure: Figure, cells: list[tuple[int, int]], dpi: int = 100) -> list[tuple[float, float, float]]:
    """RGB (0..1) sampled near the lower-left corner of cells (row, column), away from the centred text."""
    figure.set_dpi(dpi)
    figure.canvas.draw()  # lays the figure out exactly as the PNG render below will
    ax = _heat_axes(figure)
    points = [ax.transData.transform((j + 0.12, i + 0.85)) for i, j in cells]
    image = np.asarray(Image.open(io.BytesIO(to_png(figure, dpi))).convert("RGB"), dtype=float) / 255
    height = image.shape[0]
    return [tuple(image[int(height - y), int(x)]) for x, y in points]


@pytest.mark.parametrize(("tokens", "label"), [
    (0, "0"), (500, "500"), (999, "999"), (1000, "1K"), (1024, "1K"), (1500, "1.5K"), (2000, "2K"),
    (12_345, "12K"), (32_768, "32K"), (100_000, "100K"), (128_000, "128K"), (131_072, "128K"),
    (123_456, "123K"), (999_499, "999K"), (999_500, "1M"), (1_000_000, "1M"), (1_048_576, "1M"),
    (1_500_000, "1.5M"), (2_000_000, "2M"), (10_000_000, "10M"),
])
def test_length_label(tokens: int, label: str) -> None:
    assert length_label(tokens) == label


def test_length_ticks_fall_back_to_exact_numbers_when_short_labels_collide() -> None:
    figure = heatmap_figure(grid([_record(1200, 0, 1.0), _record(1234, 0, 1.0)]), title="t")
    assert [t.get_text() for t in _heat_axes(figure).get_xticklabels()] == ["1,200", "1,234"]


def test_axes_run_depth_down_from_zero_and_length_across() -> None:
    ax = _heat_axes(heatmap_figure(_known_grid(), title="t"))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1K", "2K", "4K"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0%", "50%", "100%"]
    assert ax.yaxis_inverted()  # row 0 (depth 0%) is drawn at the top
    assert "length" in ax.get_xlabel() and "depth" in ax.get_ylabel()


@pytest.mark.parametrize("palette", PALETTES)
def test_cells_are_coloured_by_their_mean_on_a_fixed_scale(palette: str) -> None:
    figure = heatmap_figure(_known_grid(), title="t", palette=palette)  # type: ignore[arg-type]
    mesh = _heat_axes(figure).collections[0]
    cmap, norm = mesh.get_cmap(), Normalize(0, 1)
    known = [((DEPTHS.index(d), LENGTHS.index(n)), s) for (n, d), s in SCORES.items() if s is not None]
    pixels = _cell_pixels(figure, [cell for cell, _ in known])
    for (cell, score), pixel in zip(known, pixels, strict=True):
        assert np.allclose(pixel, cmap(norm(score))[:3], atol=0.02), (cell, score, pixel)


def test_the_default_palette_runs_red_amber_green_and_cb_is_cividis() -> None:
    rag = _heat_axes(heatmap_figure(_known_grid(), title="t")).collections[0].get_cmap()
    low, mid, high = (rag(v)[:3] for v in (0.0, 0.5, 1.0))
    assert low[0] > 0.7 and low[1] < 0.3  # red
    assert mid[0] > 0.9 and 0.6 < mid[1] < 0.85 and mid[2] < 0.35  # amber
    assert high[1] > 0.5 and high[0] < 0.2  # green
    cb = _heat_axes(heatmap_figure(_known_grid(), title="t", palette="cb")).collections[0].get_cmap()
    assert cb.name == "cividis"


def test_colourbar_spans_exactly_zero_to_one() -> None:
    colourbar = _heat_axes(heatmap_figure(_known_grid(), title="t")).collections[0].colorbar
    assert colourbar is not None
    assert (colourbar.norm.vmin, colourbar.norm.vmax) == (0, 1)
    assert tuple(colourbar.ax.get_ylim()) == (0, 1)
    assert colourbar.ax.get_ylabel() == "accuracy"


def test_cells_are_annotated_with_their_values() -> None:
    texts = _texts(_heat_axes(heatmap_figure(_known_grid(), title="t")))
    assert texts[(0.5, 0.5)] == "0%" and texts[(1.5, 0.5)] == "50%" and texts[(2.5, 0.5)] == "100%"
    assert texts[(2.5, 1.5)] == "25%" and texts[(1.5, 2.5)] == "75%"


def test_missing_and_error_cells_are_marked_and_explained() -> None:
    figure = heatmap_figure(_known_grid(), title="t")
    ax = _heat_axes(figure)
    assert _marks(ax, "no-data") == [(0.0, 1.0)]  # (1000, 50): no records at all
    (hatched,) = [p for p in ax.patches if p.get_label() == "_no-data"]
    assert hatched.get_hatch()
    assert _marks(ax, "unscored") == [(1.0, 1.0)]  # (2000, 50): its only trial errored
    assert _texts(ax)[(1.5, 1.5)] == "error"
    assert (0.5, 1.5) not in _texts(ax)  # the empty cell has no number to show
    (neutral,) = _cell_pixels(figure, [(1, 1)])
    assert np.allclose(neutral, to_rgb("#bdbdbd"), atol=0.02)  # grey, off the red-green scale
    legend = " | ".join(t.get_text() for t in heatmap_figure(_known_grid(), title="t").legends[0].get_texts())
    assert "no data" in legend and "no scored trial" in legend


def test_multi_trial_cells_show_counts_and_flag_lost_trials() -> None:
    figure = heatmap_figure(_multi_trial_grid(), title="t")
    ax = _heat_axes(figure)
    texts = _texts(ax)
    assert texts[(0.5, 0.5)] == "2/2"  # one of three trials errored: two scored, both right
    assert texts[(1.5, 1.5)] == "2/3" and texts[(0.5, 1.5)] == "3/3"
    assert _marks(ax, "partial") and all(x > 0.5 and y < 0.5 for x, y in _marks(ax, "partial"))  # top-right
    legend = figure.legends[0]
    assert "3 trials per cell" in legend.get_title().get_text()
    assert any("errored" in t.get_text() for t in legend.get_texts())


def test_title_names_model_task_accuracy_and_date(tmp_path: Path) -> None:
    records = [_record(1000, 0, 1.0), _record(1000, 50, 0.0), _record(2000, 0, 1.0)]
    run = _run(tmp_path, records)
    title = title_for(run, run.grid())
    assert title == "scripted/oracle · single · accuracy 66.7% · 2026-11-29"
    undated = _run(tmp_path, [_record(1000, 0, None)], updated=None, created=None)
    assert title_for(undated, undated.grid()) == "scripted/oracle · single · no scored cells"
    figure = heatmap_figure(run.grid(), title=title)
    assert figure.get_suptitle() == title


def test_spread_draws_the_interval_width_on_its_own_scale() -> None:
    g = _multi_trial_grid()
    figure = heatmap_figure(g, title="t", value="spread")
    ax = _heat_axes(figure)
    colourbar = ax.collections[0].colorbar
    assert colourbar is not None and (colourbar.norm.vmin, colourbar.norm.vmax) == (0, 1)
    assert "interval" in colourbar.ax.get_ylabel()
    width = g.cells[(2000, 50.0)].interval_width
    assert width is not None and _texts(ax)[(1.5, 1.5)] == f"{width:.2f}"
    cmap = ax.collections[0].get_cmap()
    (pixel,) = _cell_pixels(figure, [(1, 1)])
    assert np.allclose(pixel, cmap(width)[:3], atol=0.02)


def test_difference_is_signed_on_a_diverging_scale_and_marks_one_sided_cells() -> None:
    base = grid([_record(1000, 0, 0.5), _record(2000, 0, 1.0), _record(1000, 50, 1.0), _record(4000, 0, None)])
    other = grid([_record(1000, 0, 1.0), _record(2000, 0, 0.75), _record(2000, 50, 1.0), _record(4000, 0, None)])
    figure = difference_figure(base, other, title="other vs base")
    ax = _heat_axes(figure)
    colourbar = ax.collections[0].colorbar
    assert colourbar is not None and (colourbar.norm.vmin, colourbar.norm.vmax) == (-1, 1)
    texts = _texts(ax)
    assert texts[(0.5, 0.5)] == "+50" and texts[(1.5, 0.5)] == "\N{MINUS SIGN}25"
    assert sorted(_marks(ax, "one-sided")) == [(0.0, 1.0), (1.0, 1.0)]
    assert texts[(2.5, 0.5)] == "error" and _marks(ax, "no-data") == [(2.0, 1.0)]  # errored in both; in neither
    cmap = ax.collections[0].get_cmap()
    up, down = _cell_pixels(figure, [(0, 0), (0, 1)])
    assert np.allclose(up, cmap(0.75)[:3], atol=0.02) and np.allclose(down, cmap(0.375)[:3], atol=0.02)


def test_curves_have_two_panels_with_bands_and_length_ticks() -> None:
    wide = grid([_record(n, d, 1.0 if n < 16000 else 0.0) for n in (1000, 4000, 16000) for d in (0, 50, 100)])
    figure = curves_figure([wide, _known_grid()], ["wide", "known"])
    by_length, by_depth = figure.axes
    assert by_length.get_xscale() == "log"  # 1K..16K spans more than 8x
    assert [t.get_text() for t in by_length.get_xticklabels()] == ["1K", "2K", "4K", "16K"]
    for ax in (by_length, by_depth):
        assert ax.get_ylim() == (0, 1)
        assert [line.get_label() for line in ax.get_lines()] == ["wide", "known"]
        assert len(ax.collections) == 2  # one shaded 95% band per run
    narrow = curves_figure([_known_grid()], ["known"])
    assert narrow.axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match="one label per grid"):
        curves_figure([_known_grid()], [])


def test_svg_is_self_contained_and_byte_identical_across_renders() -> None:
    first, second = (to_svg(heatmap_figure(_known_grid(), title="t")) for _ in range(2))
    assert first == second
    ET.fromstring(first)
    assert not re.search(r'href="(?!#|data:)', first)  # only in-document and data: references
    assert "<text" not in first  # text is drawn as paths: no font needed where it is shown


def test_rendering_closes_the_figure() -> None:
    figure = heatmap_figure(_known_grid(), title="t")
    assert to_png(figure).startswith(b"\x89PNG")
    assert figure.axes == []


def test_titles_and_labels_are_drawn_as_typed() -> None:
    # One "$" would start matplotlib mathtext and fail the render; a NUL has no glyph.
    figure = heatmap_figure(_known_grid(), title="acme/$cheap-model\x00 · single")
    assert figure.get_suptitle() == r"acme/\$cheap-model · single"
    assert to_png(figure).startswith(b"\x89PNG")
    assert to_svg(curves_figure([_known_grid()], ["costs $1 $"])).startswith("<?xml")


def test_an_empty_grid_still_draws() -> None:
    assert to_png(heatmap_figure(grid([]), title="nothing yet")).startswith(b"\x89PNG")


def test_bad_palette_or_value_is_refused() -> None:
    with pytest.raises(ValueError, match="palette"):
        heatmap_figure(_known_grid(), title="t", palette="neon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value"):
        heatmap_figure(_known_grid(), title="t", value="median")  # type: ignore[arg-type]


def test_figures_grow_with_the_grid_so_annotations_stay_legible() -> None:
    depths = [i * 100 / 34 for i in range(35)]
    lengths = [1000 * 2**k for k in range(15)]
    big = heatmap_figure(grid(_record(n, d, 1.0) for n in lengths for d in depths), title="t")
    small = heatmap_figure(_known_grid(), title="t")
    assert big.get_size_inches()[1] > 2 * small.get_size_inches()[1]
    texts = _heat_axes(big).texts
    assert len(texts) == 35 * 15 and min(float(t.get_fontsize()) for t in texts) >= 7


def test_write_heatmaps_single_trial_writes_png_and_svg_only(tmp_path: Path) -> None:
    run = _run(tmp_path, [_record(n, d, s) for (n, d), s in SCORES.items()])
    written = write_heatmaps(run, tmp_path / "out")
    assert [p.name for p in written] == ["heatmap.png", "heatmap.svg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["heatmap.png", "heatmap.svg"]
    with Image.open(written[0]) as image:
        assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)


def test_the_scripted_run_gets_a_spread_heatmap_too(tmp_path: Path) -> None:
    run = haystack_eval.run(REPO / "configs" / "scripted.yaml", out=tmp_path / "run")
    written = write_heatmaps(run, run.path, palette="cb")
    assert [p.name for p in written] == ["heatmap.png", "heatmap.svg", "heatmap-spread.png", "heatmap-spread.svg"]
    assert all(p.stat().st_size > 0 for p in written)


def test_importing_the_module_does_not_load_matplotlib() -> None:
    code = "import sys, haystack_eval.reports.heatmap; print('matplotlib' in sys.modules, 'seaborn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.split() == ["False", "False"]
