"""The single-file HTML report of one or more runs: facts, totals, heatmaps, curves, failures and errors.

The page needs nothing but itself: figures are inline SVG, styles are inline, and a
Content-Security-Policy forbids scripts and every fetch, so it opens offline and a model answer that
holds markup stays text. Everything that came from a run is escaped (see ``html_parts.esc``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from haystack_eval.errors import ConfigError, StoreError
from haystack_eval.reports import heatmap as hm
from haystack_eval.reports.html_parts import (
    config_block,
    errors_table,
    esc,
    facts,
    failing_table,
    plain,
    totals,
)
from haystack_eval.reports.labels import percent, prompt_cache
from haystack_eval.stats import Grid
from haystack_eval.sweep import Run
from haystack_eval.textfiles import write_atomic

__all__ = ["CSP", "render_report", "write_report"]

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'; object-src 'none'; "
       "form-action 'none'; base-uri 'none'")

_STYLE = """
:root { color-scheme: light; --fg: #1d232a; --muted: #5f6b76; --line: #dfe3e8; --bg: #f4f5f7; --card: #fff;
  --ok: #1a7f37; --err: #c62828; --warn: #a15c00; --skip: #5f6b76; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 20px 32px; }
h1 { font-size: 1.6rem; margin: 0 0 2px; } h2 { font-size: 1.15rem; margin: 0 0 12px; }
h3 { font-size: 1rem; margin: 0 0 8px; overflow-wrap: anywhere; }
.sub, .muted, figcaption { color: var(--muted); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
  margin: 18px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 12px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 4px; }
.tile { flex: 1 1 210px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
  display: flex; flex-direction: column; gap: 2px; }
.tile .label { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; }
.tile .value { font-size: 1.5rem; font-weight: 600; } .tile .note { color: var(--muted); font-size: .85rem; }
.pills { display: flex; flex-wrap: wrap; gap: 6px; padding-top: 6px; }
.pill { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: .85rem; white-space: nowrap;
  background: #eef0f3; color: var(--skip); }
.pill.ok { background: #e6f4ea; color: var(--ok); } .pill.error { background: #fdecea; color: var(--err); }
.pill.truncated { background: #fff4e0; color: var(--warn); }
figure.plot { margin: 8px 0 16px; }
figure.plot svg, figure.plot img { display: block; width: 100%; max-width: 880px; height: auto; }
ul.toc { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; margin: 8px 0 0; }
a { color: #0b5cad; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { background: #f0f2f5; position: sticky; top: 0; }
td { overflow-wrap: anywhere; unicode-bidi: isolate; }
table.failing td:nth-child(-n+5) { white-space: nowrap; }
.scroll { max-height: 70vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
.err { color: var(--err); font-weight: 600; }
details.config summary { cursor: pointer; color: var(--muted); }
pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  font-size: 13px; overflow: auto; white-space: pre-wrap; }
footer { color: var(--muted); font-size: .85rem; text-align: center; padding: 0 20px 28px; }
@media print { section { break-inside: avoid; } .scroll { max-height: none; overflow: visible; } }
"""

# What goes before <svg> (XML declaration, doctype, comments), the RDF metadata (full of http:// URIs),
# and comments (matplotlib repeats every label in one; they are escaped, but nobody reads them).
_SVG_PROLOG = re.compile(r"\A.*?(?=<svg[\s>])", re.DOTALL)
_SVG_NOISE = re.compile(r"<metadata>.*?</metadata>\s*|<!--.*?-->\s*", re.DOTALL)
_SVG_ID = re.compile(r'\bid="([^"]+)"')
_SVG_REFERENCE = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')
# Matplotlib writes none of these; an SVG that holds one is embedded as an image, which never runs.
_SVG_ACTIVE = re.compile(r"<script|<foreignObject|<iframe|<object|<embed|\son[a-z]+\s*=|javascript:|"
                         r'href="(?!#|data:image/)', re.IGNORECASE)


def _inline_svg(document: str, prefix: str, label: str) -> str:
    """The <svg> element of a matplotlib SVG document, its ids renamed so that figures cannot collide."""
    svg = _SVG_NOISE.sub("", _SVG_PROLOG.sub("", document, count=1)).strip()
    if not svg.startswith("<svg") or _SVG_ACTIVE.search(svg):
        data = base64.b64encode(document.encode("utf-8")).decode("ascii")
        return f'<img src="data:image/svg+xml;base64,{data}" alt="{esc(label)}">'
    # Numbered in order of appearance: matplotlib salts its ids at random, and a report rendered twice
    # from the same run should come out byte for byte the same.
    ids = {name: number for number, name in enumerate(dict.fromkeys(_SVG_ID.findall(svg)))}

    def rename(match: re.Match[str]) -> str:
        head, name = match.group(1), match.group(2)
        return f"{head}{prefix}-{ids[name]}" if name in ids else match.group(0)

    svg = _SVG_REFERENCE.sub(rename, svg)
    return svg.replace("<svg", f'<svg role="img" aria-label="{esc(label)}"', 1)


class _Figures:
    """Turns figures into inline SVG, numbering them for unique ids."""

    def __init__(self) -> None:
        self.count = 0

    def embed(self, figure: Any, label: str, caption: str = "") -> str:
        self.count += 1
        body = _inline_svg(hm.to_svg(figure), f"fig{self.count}", label)
        note = f"<figcaption>{caption}</figcaption>" if caption else ""
        return f'<figure class="plot">{body}{note}</figure>'


def _labels(runs: Sequence[Run]) -> list[str]:
    """Names that tell the runs apart: the run names, then with the model, then numbered."""
    for labels in ([plain(r.name) for r in runs], [plain(f"{r.name} · {r.model}") for r in runs]):
        if len(set(labels)) == len(labels):
            return labels
    return [plain(f"{r.name} · {r.model} #{i}") for i, r in enumerate(runs, start=1)]


def _heatmaps(run: Run, grid: Grid, figures: _Figures, palette: hm.Palette, *, mean: bool, spread: bool) -> str:
    if not grid.cells:
        return '<p class="muted">No records yet: nothing to draw.</p>'
    title = plain(hm.title_for(run, grid))  # a NUL in a model name would upset matplotlib's fonts
    parts = []
    if mean:
        parts.append(figures.embed(hm.heatmap_figure(grid, title=title, palette=palette), f"Heatmap: {title}"))
    if spread and grid.trials > 1:  # one trial has no spread to show
        figure = hm.heatmap_figure(grid, title=title, palette=palette, value="spread")  # its subtitle says spread
        parts.append(figures.embed(figure, f"Spread: {title}"))
    return "".join(parts)


def _curves(grids: Sequence[Grid], labels: Sequence[str], figures: _Figures) -> str:
    drawn = [(g, label) for g, label in zip(grids, labels, strict=True) if g.cells]
    if not drawn:
        return ""
    figure = hm.curves_figure([g for g, _ in drawn], [label for _, label in drawn])
    body = figures.embed(figure, "Accuracy by length and by depth")
    return f"<section><h2>Accuracy by length and by depth</h2>{body}</section>"


def _details(run: Run, label: str = "") -> str:
    of = f" · {esc(label)}" if label else ""
    return (f"<section><h2>Failing cells{of}</h2>{failing_table(run.records)}</section>"
            f"<section><h2>Errors by class{of}</h2>{errors_table(run.records)}</section>")


def _single(run: Run, figures: _Figures, palette: hm.Palette) -> str:
    grid = run.grid()
    return (f'<header><h1>Needle-in-a-haystack report</h1><p class="sub">{esc(run.model)} · {esc(run.name)}</p>'
            f"</header><section><h2>Run</h2>{facts(run)}{config_block(run)}{totals(grid, run.task, prompt_cache(run))}</section>"
            f"<section><h2>Heatmap</h2>{_heatmaps(run, grid, figures, palette, mean=True, spread=True)}"
            f"</section>{_curves([grid], _labels([run]), figures)}{_details(run)}")


def _difference(base: Grid, other: Grid, base_label: str, label: str, figures: _Figures) -> str:
    if not base.cells or not other.cells:
        return f'<p class="muted">{esc(label)}: no records to compare.</p>'
    before, after = base.overall.mean, other.overall.mean
    change = f" ({100 * (after - before):+.1f} points)" if before is not None and after is not None else ""
    caption = esc(f"{label}: overall accuracy {percent(before)} → {percent(after)}{change}.")
    return figures.embed(hm.difference_figure(base, other, title=f"{label} − {base_label}"),
                         f"Difference: {label} minus {base_label}", caption)


def _comparison(runs: Sequence[Run], figures: _Figures, palette: hm.Palette) -> str:
    grids = [run.grid() for run in runs]
    labels = _labels(runs)
    cards = "".join(
        f'<article class="card"><h3>{esc(label)}</h3>{facts(run)}{totals(grid, run.task, prompt_cache(run))}'
        f"{_heatmaps(run, grid, figures, palette, mean=True, spread=False)}</article>"
        for run, grid, label in zip(runs, grids, labels, strict=True)
    )
    differences = "".join(_difference(grids[0], grid, labels[0], label, figures)
                          for grid, label in zip(grids[1:], labels[1:], strict=True))
    nav = "".join(f'<li><a href="#run-{i}">{esc(label)}</a></li>' for i, label in enumerate(labels, start=1))
    # Each run's config, spread and failures follow the comparison; the cards above hold the mean heatmaps.
    per_run = "".join(
        f'<section id="run-{i}"><h2>{esc(label)}</h2>{config_block(run)}'
        f"{_heatmaps(run, grid, figures, palette, mean=False, spread=True)}</section>{_details(run, label)}"
        for i, (run, grid, label) in enumerate(zip(runs, grids, labels, strict=True), start=1)
    )
    return (f'<header><h1>Comparison of {len(runs)} runs</h1><p class="sub">Baseline: {esc(labels[0])}</p>'
            f'<ul class="toc">{nav}</ul></header><section><h2>Side by side</h2><div class="cards">{cards}</div></section>'
            f"<section><h2>Difference from {esc(labels[0])}</h2>{differences}</section>"
            f"{_curves(grids, labels, figures)}{per_run}")


def render_report(runs: Sequence[Run], *, palette: str = "rag") -> str:
    """One self-contained HTML document for one run, or several side by side with their differences."""
    if not runs:
        raise ConfigError("no runs to report", where="report", fix="give at least one run directory")
    if palette not in hm.PALETTES:
        raise ConfigError(f"unknown palette {palette!r}", where="palette", fix=f"use one of {', '.join(hm.PALETTES)}")
    chosen = cast(hm.Palette, palette)
    from haystack_eval import __version__  # here, not at the top: the package imports its parts first

    figures = _Figures()
    body = _single(runs[0], figures, chosen) if len(runs) == 1 else _comparison(runs, figures, chosen)
    title = f"{runs[0].name} · {runs[0].model}" if len(runs) == 1 else " vs ".join(_labels(runs))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="haystack-eval {esc(__version__)}">\n'
        f"<title>haystack-eval · {esc(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'  # else browsers ask the server for /favicon.ico
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>{body}</main>\n"
        f"<footer>Made by haystack-eval {esc(__version__)}. This page runs no scripts and loads nothing: "
        "it works offline.</footer>\n</body>\n</html>\n"
    )


def write_report(runs: Sequence[Run], out: Path, *, palette: str = "rag") -> Path:
    """Render the report and write it to ``out`` as UTF-8, atomically (a reader never sees half a file)."""
    text = render_report(runs, palette=palette)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, text)
    except OSError as exc:
        raise StoreError(f"cannot write the report ({exc.strerror or type(exc).__name__})", where=str(out),
                         fix="choose a writable --out path") from None
    return out
