"""The ``haystack-eval`` command line: the only module that prints or exits.

Exit codes: 0 ok, 1 failed check or run, 2 bad input (config, flags, files), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import TyperException

from haystack_eval import __version__
from haystack_eval.errors import ConfigError, HaystackError

if TYPE_CHECKING:
    from haystack_eval.contexts import Context
    from haystack_eval.sweep import Run

app = typer.Typer(
    name="haystack-eval",
    help="Measure how well language models find facts hidden in long contexts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold API keys
    rich_markup_mode=None,
)


class PaletteChoice(str, Enum):
    """Heatmap colours."""

    rag = "rag"
    cb = "cb"


PaletteOption = Annotated[PaletteChoice, typer.Option(
    "--palette", help="Heatmap colours: rag (red-amber-green) or cb (colour-blind safe).")]
ConfigArg = Annotated[
    Path, typer.Argument(metavar="CONFIG", help="YAML config file (see configs/quickstart.yaml).", show_default=False,
                         readable=False)  # checked when read, so that the message says what to do
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"haystack-eval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Measure how well language models find facts hidden in long contexts."""


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a HaystackError into its one-line message on stderr and the matching exit code."""
    try:
        yield
    except HaystackError as exc:
        for line in exc.lines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(exc.exit_code) from None


@app.command()
def validate(config: ConfigArg) -> None:
    """Check a config (fields, filler, needles, tokenizer, lengths) without calling any model."""
    from haystack_eval.config import load_config
    from haystack_eval.contexts import builder_for

    with _user_errors():
        cfg = load_config(config)
        builder = builder_for(cfg)
        lengths, depths = cfg.haystack.length_values(), cfg.haystack.depth_values()
        corpus = builder.corpus
        cells = len(lengths) * len(depths) * cfg.task.trials
        typer.echo(
            f"ok: {cfg.name}: {len(lengths)} lengths x {len(depths)} depths x {cfg.task.trials} trials = {cells} cells; "
            f"model {cfg.model.provider}/{cfg.model.name}; tokenizer {builder.tokenizer.name}; "
            f"filler {corpus.name} ({len(corpus.documents)} documents, {corpus.words:,} words, "
            f"sha256 {corpus.sha256[:12]}); needles {builder.needles.source} ({len(builder.needles.specs)}); "
            f"shortest possible length {builder.min_length(cfg.task.trials)}"
        )


@app.command()
def context(
    config: ConfigArg,
    length: Annotated[int, typer.Option("--length", "-l", min=1, help="Tokens of the whole prompt.")],
    depth: Annotated[float, typer.Option("--depth", "-d", min=0, max=100, help="Needle depth, percent.")],
    trial: Annotated[int, typer.Option("--trial", "-t", min=0, help="Trial number (needle and offset).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the text.")] = False,
) -> None:
    """Show exactly what one cell sends: the prompt with its needle, and what was built."""
    from haystack_eval.config import load_config
    from haystack_eval.contexts import builder_for

    with _user_errors():
        cfg = load_config(config)
        builder = builder_for(cfg)
        if trial >= cfg.task.trials:
            raise cfg.error(("task", "trials"), f"--trial {trial} is outside this config's {cfg.task.trials} "
                            f"trial(s)", f"use --trial 0..{cfg.task.trials - 1} or raise task.trials")
        smallest = builder.min_length(trial + 1)
        if length < smallest:
            raise ConfigError(f"{length} is below the {smallest} tokens this prompt needs", where="--length",
                              fix=f"use --length {smallest} or more")
        ctx = builder.build(length, depth, trial)
    if as_json:
        typer.echo(json.dumps(ctx.to_json(), ensure_ascii=False))
        return
    _show(ctx)


@app.command()
def run(
    config: ConfigArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: heatmaps/<name>).")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, max=1024,
                                                    help="Requests in flight (default: run.concurrency).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (cells, tokens, skips); send nothing.")] = False,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start over; the old files move to replaced-<time>/.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the heatmaps, report.html and summary.md.")] = False,
    palette: PaletteOption = PaletteChoice.rag,
    max_cost: Annotated[float | None, typer.Option(
        "--max-cost", min=0, metavar="USD", help="Send no cell that could take the run's cost (records of earlier "
        "invocations included) past USD; the run ends partial.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Send the cells through the provider's batch API (OpenAI, Anthropic): "
                                        "batch prices, results within 24 h; polls every run.poll_s, and the same "
                                        "command resumes polling.")] = False,
) -> None:
    """Run the sweep (resuming where it stopped), write the run directory, then its heatmaps and report."""
    import asyncio

    from haystack_eval.cli_progress import progress_for
    from haystack_eval.config import load_config
    from haystack_eval.contexts import builder_for
    from haystack_eval.reports.labels import prompt_cache
    from haystack_eval.sweep import arun, default_out, plan_run

    with _user_errors():
        cfg = load_config(config)
        builder_for(cfg)  # every input checked before anything is created or sent
        target = out or default_out(cfg)
        plan = plan_run(cfg, target, resume=not no_resume)
        if dry_run:
            _print_plan(plan.to_json(), f"dry run for {target}: nothing was sent")
            return
        progress = progress_for(len(plan.cells), len(plan.cells) - len(plan.pending), quiet=quiet)
        try:
            result = asyncio.run(arun(cfg, out=target, concurrency=concurrency, resume=not no_resume,
                                      progress=progress.update, notice=progress.note, max_cost=max_cost,
                                      batch=batch))
        except KeyboardInterrupt:
            progress.stop()
            typer.echo(f"interrupted: finished records are kept in {target}; run the same command to resume", err=True)
            raise typer.Exit(130) from None
        finally:
            progress.stop()  # also before an error's line, which a live bar would draw over
    statuses = result.statuses
    accuracy = "-" if result.accuracy is None else f"{100 * result.accuracy:.1f}%"
    if cfg.task.kind == "absent" and result.accuracy is not None:
        accuracy += f" (hallucination rate {100 * (1 - result.accuracy):.1f}%)"
    typer.echo(f"{cfg.name}: {len(result.records)} cells: accuracy {accuracy}; "
               + ", ".join(f"{statuses.get(s, 0)} {s}" for s in ("ok", "error", "truncated", "skipped", "unscored")
                         if s != "unscored" or statuses.get(s))
               + (f"; cost ${result.cost_usd:,.4f}" if result.cost_usd else "")  # a local model's 0 is no news
               + (f"; {100 * use.share:.1f}% of input cached (ideal {100 * use.ideal_share:.1f}%)"
                  if (use := prompt_cache(result)) is not None else "")
               + f"; results in {target / 'results.jsonl'}")
    if not no_report:
        with _user_errors():
            _render([result], None, palette)
    stopped = result.manifest.get("stopped_by") == "max_cost"
    if stopped:
        typer.echo(f"partial run: {result.partial_reason}; raise --max-cost and run the same command to go on",
                   err=True)
    if statuses.get("error"):
        typer.echo(f"{statuses['error']} cell(s) ended in an error (see 'error' in results.jsonl); "
                   "run the same command again to retry them", err=True)
    if stopped or statuses.get("error"):
        raise typer.Exit(1)


@app.command()
def estimate(
    config: ConfigArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Calls, tokens and cost of the whole sweep: plain, with prompt caching, and batched; nothing is sent."""
    from haystack_eval.config import load_config
    from haystack_eval.contexts import builder_for
    from haystack_eval.sweep import plan_run
    from haystack_eval.sweep.estimate import describe
    from haystack_eval.sweep.estimate import estimate as estimate_sweep
    from haystack_eval.sweep.pricing import pricer_for

    with _user_errors():
        cfg = load_config(config)
        builder = builder_for(cfg)
        plan = plan_run(cfg, resume=False)  # the whole sweep, whatever a run directory holds
        result = estimate_sweep(cfg, builder, plan, pricer_for(cfg.model))
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    _print_plan(result.numbers, "\n".join(describe(result)))


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", show_default=False,
                                               help="Run directories (or gkamradt / needlehaystack results).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The HTML file (default: RUN_DIR/report.html for "
                                             "one run, comparison.html for several).")] = None,
    palette: PaletteOption = PaletteChoice.rag,
) -> None:
    """Heatmaps, a single-file HTML report and summary.md; several runs: side by side and their difference."""
    from haystack_eval.sweep import load_run

    with _user_errors():
        loaded = [load_run(path) for path in runs]
        _render(loaded, out, palette)


@app.command()
def check(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", show_default=False,
                                            help="Run directory (or gkamradt / needlehaystack results).")],
    config: Annotated[Path | None, typer.Option("--config", help="Config whose check: section holds the thresholds "
                                                "(default: the config recorded in the run).")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Baseline run for max_drop "
                                                  "(default: check.baseline).")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write the result as JUnit XML.")] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="Append a Markdown summary to this file "
                                                 "(e.g. $GITHUB_STEP_SUMMARY).")] = None,
) -> None:
    """Exit 0 when the run meets the check: thresholds, 1 when it regresses, 2 on unusable input."""
    from haystack_eval.reports.check import check_run, write_junit
    from haystack_eval.reports.markdown import render_summary
    from haystack_eval.reports.rules import check_rules
    from haystack_eval.sweep import load_run

    with _user_errors():
        run = load_run(run_dir)
        rules, base_path = check_rules(run, config, baseline)
        base = load_run(base_path) if base_path is not None and rules.max_drop is not None else None
        outcome = check_run(run, rules, base)
        if junit is not None:
            write_junit(outcome, junit)
        if summary is not None:
            _append(summary, render_summary([run], outcome))
    for result in outcome.results:
        typer.echo(result.line())
    for note in outcome.notes:
        typer.echo(f"note: {note}")
    if base is not None and base.path.resolve() == run.path.resolve():
        typer.echo("note: the baseline is the run itself; point --baseline at a committed run", err=True)
    if not outcome.passed:
        typer.echo(f"check failed: {len(outcome.failures)} of {len(outcome.results)} rule(s) not met", err=True)
        raise typer.Exit(1)
    typer.echo(f"check passed: {len(outcome.results)} rule(s) met")


def _append(path: Path, text: str) -> None:
    """Append to a file that CI collects (a step summary); a failure names the file."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write ({exc.strerror})", where=str(path), fix="give a writable file") from None


def _render(runs: Sequence[Run], out: Path | None, palette: PaletteChoice) -> None:
    """Write heatmaps, report and summary, and say where they are."""
    from haystack_eval.reports.outputs import render_runs

    written = render_runs(runs, out, palette="cb" if palette is PaletteChoice.cb else "rag")
    for path in written:
        typer.echo(f"wrote {path}")
    report = next(p for p in written if p.suffix == ".html")
    typer.echo(f"open {report} in a browser: heatmaps, curves and every failing cell")


def _print_plan(numbers: dict[str, object], footer: str) -> None:
    """The plan as aligned lines."""
    labels = {"cells": "cells", "finished": "already finished", "to_ask": "to ask", "skipped": "skipped (too long)",
              "input_tokens": "input tokens", "output_tokens_max": "output tokens (at most)",
              "output_tokens_typical": "output tokens (typical)",
              "context_window": "context window"}
    for key, label in labels.items():
        if key not in numbers:
            continue
        value = numbers.get(key)
        shown = "unknown" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        typer.echo(f"{label:>24}: {shown}")
    typer.echo(footer)


def _show(ctx: Context) -> None:
    """Print the prompt with the hidden sentences highlighted (needles yellow, distractors grey), then a summary."""
    console = Console(highlight=False, soft_wrap=True)
    for message in ctx.prompt.messages:
        console.print(Text(f"--- {message.role} ---", style="bold cyan"))
        text = Text(message.content)
        if message.role == "user":
            for hidden in ctx.needles:
                style = "bold black on yellow" if hidden.role == "needle" else "black on bright_black"
                text.stylize(style, hidden.char_offset, hidden.char_offset + len(hidden.text))
        console.print(text)
    head = (f"--- {ctx.tokens} tokens ({ctx.tokenizer}, requested {ctx.length}); haystack {ctx.haystack_tokens}; "
            f"task {ctx.task}; trial {ctx.trial}")
    lines = [head]
    for hidden in ctx.needles:
        lines.append(f"--- {hidden.role} {hidden.id!r} at depth {hidden.depth:g}% (requested {ctx.depth:g}), "
                     f"token {hidden.token_offset}; answer {hidden.answer!r}")
    if not ctx.needles:
        lines.append("--- no needle: the right answer is that the document does not say")
    console.print(Text("\n".join(lines), style="bold"))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; usage errors become one line and exit code 2."""
    try:
        code = app(args=list(argv) if argv is not None else None, prog_name="haystack-eval", standalone_mode=False)
    except TyperException as exc:  # bad flags or arguments (typer's usage errors)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "haystack-eval"
        typer.echo(f"error: {exc.format_message()}; see '{where} --help'", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

