"""The cells of a sweep, the order they are asked in, and what a run would send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haystack_eval.config import Config

__all__ = ["Cell", "CellKey", "Plan", "cells", "key_of"]

CellKey = tuple[int, float, int]  # (length, depth, trial)


@dataclass(frozen=True)
class Cell:
    """One (length, depth, trial) point of the grid."""

    length: int
    depth: float
    trial: int

    @property
    def key(self) -> CellKey:
        """The identity of the cell in results.jsonl."""
        return (self.length, float(self.depth), self.trial)


def key_of(record: dict[str, Any]) -> CellKey:
    """The cell a record belongs to."""
    return (int(record["length"]), float(record["depth"]), int(record["trial"]))


def cells(config: Config) -> list[Cell]:
    """Every cell, in asking order: by rising length, then trial, then rising depth.

    A (length, trial) pair fixes the haystack, so its cells differ only from their needle on; asked
    by rising depth, each prompt shares everything before the previous one's needle with it, which
    prefix caches (llama.cpp, vLLM, provider prompt caching) reuse (bench/local_model.py measures the
    saving). Order never changes what a cell measures.
    """
    h = config.haystack
    return [Cell(length, depth, trial) for length in sorted(h.length_values())
            for trial in range(config.task.trials) for depth in sorted(h.depth_values())]


@dataclass(frozen=True)
class Plan:
    """What a run will do: every cell, those already finished, and those too long for the model."""

    cells: tuple[Cell, ...]
    finished: frozenset[CellKey]
    window: int | None  # the model's context window, when known
    max_output_tokens: int

    def fits(self, cell: Cell) -> bool:
        """Whether the prompt and the output budget fit the window."""
        return self.window is None or cell.length + self.max_output_tokens <= self.window

    @property
    def pending(self) -> list[Cell]:
        """Cells still to record, in asking order."""
        return [c for c in self.cells if c.key not in self.finished]

    @property
    def to_ask(self) -> list[Cell]:
        """Pending cells that will be sent to the model."""
        return [c for c in self.pending if self.fits(c)]

    @property
    def skipped(self) -> list[Cell]:
        """Pending cells that are too long for the model's window (recorded as skipped, never sent)."""
        return [c for c in self.pending if not self.fits(c)]

    def to_json(self) -> dict[str, Any]:
        """The plan's numbers, JSON-ready."""
        ask = self.to_ask
        return {
            "cells": len(self.cells),
            "finished": len(self.cells) - len(self.pending),
            "to_ask": len(ask),
            "skipped": len(self.skipped),
            "calls": len(ask),
            "input_tokens": sum(c.length for c in ask),  # each prompt is exact to within 2 tokens
            "output_tokens_max": len(ask) * self.max_output_tokens,
            "context_window": self.window,
        }
