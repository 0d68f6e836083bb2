"""Progress of a sweep on the terminal (part of the CLI layer: it prints).

A rich bar on a terminal; plain periodic lines otherwise (CI logs); nothing with ``-q``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from haystack_eval.sweep import Tally

__all__ = ["SweepProgress", "progress_for"]

_PLAIN_EVERY_S = 10.0


def _stats(tally: Tally) -> str:
    accuracy = "-" if tally.accuracy is None else f"{100 * tally.accuracy:.1f}%"
    cost = f", cost ${tally.cost_usd:,.4f}" if tally.cost_usd else ""
    return (f"accuracy {accuracy}, errors {tally.errors}, truncated {tally.truncated}, skipped {tally.skipped}, "
            f"tokens in {tally.input_tokens:,}{cost}")


class SweepProgress(Protocol):
    """What the run command reports to."""

    def update(self, tally: Tally, record: dict[str, Any]) -> None:
        """A record was kept."""
        ...

    def note(self, message: str) -> None:
        """Something the user should know."""
        ...

    def stop(self) -> None:
        """The sweep ended (or was interrupted)."""
        ...


class _Bar:
    """A rich progress bar with done/total, ETA and running numbers."""

    def __init__(self, total: int, done: int) -> None:
        self._console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"), console=self._console, transient=False,
        )
        self._task = self._progress.add_task("sweep", total=total, completed=done, stats="")
        self._progress.start()

    def update(self, tally: Tally, record: dict[str, Any]) -> None:
        self._progress.update(self._task, completed=tally.done, stats=_stats(tally))

    def note(self, message: str) -> None:
        self._progress.console.print(f"note: {message}", highlight=False)

    def stop(self) -> None:
        self._progress.stop()


class _Lines:
    """A plain line every few seconds, for logs."""

    def __init__(self, total: int, done: int) -> None:
        self._start, self._first_done, self._last = time.monotonic(), done, 0.0

    def update(self, tally: Tally, record: dict[str, Any]) -> None:
        moment = time.monotonic()
        if moment - self._last < _PLAIN_EVERY_S and tally.done < tally.total:
            return
        self._last = moment
        rate = (tally.done - self._first_done) / max(moment - self._start, 1e-9)
        eta = f"{(tally.total - tally.done) / rate:.0f}s" if rate > 0 else "-"
        typer.echo(f"[{tally.done}/{tally.total}] eta {eta}; {_stats(tally)}", err=True)

    def note(self, message: str) -> None:
        typer.echo(f"note: {message}", err=True)

    def stop(self) -> None:
        pass


class _Quiet:
    def update(self, tally: Tally, record: dict[str, Any]) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def stop(self) -> None:
        pass


def progress_for(total: int, done: int, *, quiet: bool) -> SweepProgress:
    """The right progress display for where output goes."""
    if quiet:
        return _Quiet()
    return _Bar(total, done) if sys.stderr.isatty() else _Lines(total, done)
