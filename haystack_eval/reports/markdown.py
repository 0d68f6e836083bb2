"""``summary.md``: a short Markdown summary of one or more runs, fit for a CI step summary."""

from __future__ import annotations

from collections.abc import Sequence

from haystack_eval.reports.check import Outcome
from haystack_eval.reports.labels import cache_text, interval, length_label, percent, prompt_cache
from haystack_eval.stats import Grid
from haystack_eval.sweep import Run

__all__ = ["render_summary"]

_STATUSES = ("ok", "error", "truncated", "skipped", "unscored")


def _cell(text: object) -> str:
    """Table-safe text: no pipes, no newlines, no HTML tags (GitHub renders some HTML in Markdown)."""
    shown = " ".join(str(text).split()).replace("|", "\\|")
    return shown.replace("&", "&amp;").replace("<", "&lt;")  # without '<' no tag can open


def _totals(run: Run, grid: Grid) -> list[str]:
    effective = grid.effective_length()
    statuses = ", ".join(f"{grid.statuses.get(s, 0)} {s}" for s in _STATUSES if grid.statuses.get(s))
    return [
        "| model | task | cells | statuses | accuracy | 95% CI | effective length |",
        "|---|---|---:|---|---:|---|---:|",
        (f"| `{_cell(run.model)}` | {_cell(run.task)} | {sum(grid.statuses.values())} | {statuses} | "
         f"{percent(grid.overall.mean)} | {interval(grid.overall)} | "
         f"{'–' if effective is None else f'{effective:,}'} |"),
    ] + _hallucination(run, grid)


def _hallucination(run: Run, grid: Grid) -> list[str]:
    """For the absent task, the share of answers to a question the document does not answer."""
    if run.task != "absent" or grid.overall.mean is None:
        return []
    low, high = grid.overall.interval
    rate = (f"**Hallucination rate** (answers given where the document holds none): "
            f"{percent(1 - grid.overall.mean)} (95% CI {percent(1 - high)}–{percent(1 - low)})")
    return ["", rate]


def _state(run: Run) -> list[str]:
    """Why a run is partial, and what its records cost, when known."""
    lines = [f"**Partial run**: {_cell(run.partial_reason)}."] if run.partial_reason else []
    if run.cost_usd:  # a local model's 0 is no news
        lines.append(f"Cost of the records: ${run.cost_usd:,.4f}.")
    if (use := prompt_cache(run)) is not None:
        lines.append(f"Prompt cache: {cache_text(use)}.")
    return [*lines, ""] if lines else []


def _by_length(grid: Grid) -> list[str]:
    lines = ["| length | accuracy | 95% CI | scored |", "|---:|---:|---|---:|"]
    for length in grid.lengths:
        share = grid.by_length[length]
        lines.append(f"| {length_label(length)} | {percent(share.mean)} | {interval(share)} | {share.n} |")
    return lines


def _matrix(grid: Grid) -> list[str]:
    """Depth rows × length columns of cell accuracy; ``err`` marks a cell with no scored trial."""
    head = "| depth | " + " | ".join(length_label(n) for n in grid.lengths) + " |"
    lines = [head, "|---:|" + "---:|" * len(grid.lengths)]
    for depth in grid.depths:
        row = []
        for length in grid.lengths:
            cell = grid.cell(length, depth)
            if cell is None:
                row.append("")
            elif cell.mean is None:
                row.append("err" if cell.errors else "skip")
            else:
                mark = "*" if cell.errors or cell.truncated else ""
                row.append(f"{100 * cell.mean:.0f}{mark}")
        lines.append(f"| {depth:g}% | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells show accuracy in percent; `*` marks a cell where some trials ended in an error or "
                 "were cut off, `err`/`skip` a cell with no scored trial.")
    return lines


def _errors(grid: Grid) -> list[str]:
    if not grid.error_classes:
        return []
    lines = ["", "**Errors by class**", "", "| class | cells |", "|---|---:|"]
    lines += [f"| {_cell(name)} | {count} |" for name, count in sorted(grid.error_classes.items())]
    return lines


def _check(outcome: Outcome) -> list[str]:
    verdict = "passed" if outcome.passed else f"failed ({len(outcome.failures)} rule(s))"
    lines = ["", f"### Check: {verdict}", ""]
    lines += [f"- {'✅' if r.passed else '❌'} {_cell(r.rule)} ({_cell(r.scope)}): {_cell(r.detail)}"
              for r in outcome.results]
    lines += [f"- note: {_cell(note)}" for note in outcome.notes]
    return lines


def render_summary(runs: Sequence[Run], outcome: Outcome | None = None) -> str:
    """Markdown for one run (totals, by length, the grid, errors) or several (one block each)."""
    lines: list[str] = []
    for run in runs:
        grid = run.grid()
        date = f" · {run.date[:10]}" if run.date else ""
        lines += [f"## haystack-eval: {_cell(run.name)}", "",
                  f"Results of `{_cell(run.source)}`{date}; lengths in tokens of the whole prompt.", ""]
        lines += _state(run)
        lines += _totals(run, grid) + ["", "**Accuracy by length**", ""] + _by_length(grid)
        lines += ["", "**Accuracy by depth and length**", ""] + _matrix(grid) + _errors(grid) + [""]
    if outcome is not None:
        lines += _check(outcome)
    return "\n".join(lines).rstrip() + "\n"
