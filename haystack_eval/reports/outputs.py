"""Everything ``run`` and ``report`` leave beside the results: heatmaps, ``report.html`` and ``summary.md``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from haystack_eval.errors import StoreError
from haystack_eval.reports.check import Outcome
from haystack_eval.reports.heatmap import Palette, write_heatmaps
from haystack_eval.reports.html import write_report
from haystack_eval.reports.markdown import render_summary
from haystack_eval.sweep import Run
from haystack_eval.textfiles import write_atomic

__all__ = ["REPORT", "SUMMARY", "render_runs", "write_summary"]

REPORT = "report.html"
SUMMARY = "summary.md"


def write_summary(runs: Sequence[Run], path: Path, outcome: Outcome | None = None) -> Path:
    """Write ``summary.md`` for the runs (and a check outcome, if any)."""
    try:
        write_atomic(path, render_summary(runs, outcome))
    except OSError as exc:
        raise StoreError(f"cannot write {path.name} ({exc.strerror})", where=str(path.parent),
                         fix="choose a writable --out location") from None
    return path


def render_runs(runs: Sequence[Run], out: Path | None = None, *, palette: Palette = "rag") -> list[Path]:
    """Render the outputs; one run: heatmaps, report and summary in its directory (or beside ``out``);
    several: one comparison report at ``out`` with its summary beside it."""
    for run in runs:
        if not run.records:
            raise StoreError("has no records yet", where=str(run.path), fix="run the sweep first")
    written: list[Path] = []
    if len(runs) == 1 and out is None:
        folder = runs[0].path if runs[0].path.is_dir() else runs[0].path.parent
        report = folder / REPORT
    else:
        report = out or Path("comparison.html")
        folder = report.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if len(runs) == 1:
            written += write_heatmaps(runs[0], folder, palette=palette)
        written.append(write_report(runs, report, palette=palette))
    except OSError as exc:
        raise StoreError(f"cannot write the report ({exc.strerror})", where=str(folder),
                         fix="choose a writable --out location") from None
    summary = folder / SUMMARY if report.name == REPORT else report.with_suffix(".md")
    written.append(write_summary(runs, summary))
    return written
