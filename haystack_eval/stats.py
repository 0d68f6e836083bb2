"""Grid statistics over records: per-cell means with Wilson intervals, marginals, effective length, drop tests.

Pure functions of the record dicts in ``results.jsonl``. This module sits beside ``scoring`` (above
``sweep``) so that ``Run.grid()`` can use it without ``sweep`` importing ``reports``.

A score is in 0..1 (partial credit allowed). Records that are not scored (errors, truncations, skips)
are counted apart and never enter a mean. Intervals treat the sum of scores as the number of
successes, which is exact for 0/1 scores and a close approximation for partial credit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CellStats", "Grid", "Share", "drop_p_value", "grid", "wilson"]

Z95 = 1.959963984540054  # two-sided 95% normal quantile
DEFAULT_EFFECTIVE_SHARE = 0.85  # effective length: accuracy stays >= 85% of the shortest length's


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n`` (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clamp rounding noise: the interval always contains p and stays inside 0..1.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def drop_p_value(base_successes: float, base_n: int, successes: float, n: int) -> float:
    """One-sided p-value that the second proportion is lower than the first (pooled two-proportion z-test)."""
    if base_n <= 0 or n <= 0:
        return 1.0
    pooled = (base_successes + successes) / (base_n + n)
    variance = pooled * (1 - pooled) * (1 / base_n + 1 / n)
    if variance <= 0:  # both all-correct or both all-wrong: no evidence of any difference
        return 1.0
    z = (base_successes / base_n - successes / n) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Share:
    """A mean score over ``n`` scored records, with its 95% Wilson interval."""

    total: float
    n: int

    @property
    def mean(self) -> float | None:
        """The mean score, or None without scored records."""
        return self.total / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of the mean."""
        return wilson(self.total, self.n)

    def to_json(self) -> dict[str, Any]:
        """mean, n and the interval, for JSON output."""
        low, high = self.interval
        return {"mean": self.mean, "n": self.n, "low": low, "high": high}


@dataclass(frozen=True)
class CellStats:
    """One (length, depth) cell over its trials: the scored share and what kept records out of it."""

    length: int
    depth: float
    share: Share
    scores: tuple[float, ...]
    statuses: Mapping[str, int]

    @property
    def mean(self) -> float | None:
        """Mean score over the scored trials."""
        return self.share.mean

    @property
    def std(self) -> float | None:
        """Sample standard deviation of the scores (None below two scored trials)."""
        if len(self.scores) < 2:
            return None
        mean = sum(self.scores) / len(self.scores)
        return math.sqrt(sum((s - mean) ** 2 for s in self.scores) / (len(self.scores) - 1))

    @property
    def interval_width(self) -> float | None:
        """Width of the 95% interval (None without scored trials)."""
        if not self.share.n:
            return None
        low, high = self.share.interval
        return high - low

    @property
    def errors(self) -> int:
        """Trials that ended in an error."""
        return self.statuses.get("error", 0)

    @property
    def skipped(self) -> int:
        """Trials skipped because the prompt did not fit the window."""
        return self.statuses.get("skipped", 0)

    @property
    def truncated(self) -> int:
        """Trials whose answer was cut off before any text."""
        return self.statuses.get("truncated", 0)


@dataclass(frozen=True)
class Grid:
    """Statistics of a run: cells by (length, depth), marginals, status and error counts."""

    lengths: tuple[int, ...]
    depths: tuple[float, ...]
    cells: Mapping[tuple[int, float], CellStats]
    overall: Share
    by_length: Mapping[int, Share]
    by_depth: Mapping[float, Share]
    statuses: Mapping[str, int]
    error_classes: Mapping[str, int] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        """The most records any cell has (1 for a single-trial run)."""
        return max((sum(c.statuses.values()) for c in self.cells.values()), default=0)

    def cell(self, length: int, depth: float) -> CellStats | None:
        """The statistics of one cell, or None when the run has no record there."""
        return self.cells.get((length, depth))

    def effective_length(self, threshold: float | None = None) -> int | None:
        """The longest length up to which every length's accuracy is at least ``threshold``.

        Without a threshold it is 85% of the accuracy at the shortest length. A length without scored
        records ends the run of passing lengths: no evidence is not a pass.
        """
        if not self.lengths:
            return None
        if threshold is None:
            first = self.by_length[self.lengths[0]].mean
            if not first:
                return None
            threshold = DEFAULT_EFFECTIVE_SHARE * first
        best = None
        for length in self.lengths:
            mean = self.by_length[length].mean
            if mean is None or mean < threshold:
                break
            best = length
        return best

    def to_json(self) -> dict[str, Any]:
        """The grid as plain JSON (for --json output and scripts)."""
        return {
            "overall": self.overall.to_json(),
            "effective_length": self.effective_length(),
            "statuses": dict(self.statuses),
            "error_classes": dict(self.error_classes),
            "by_length": {str(k): v.to_json() for k, v in self.by_length.items()},
            "by_depth": {_depth_key(k): v.to_json() for k, v in self.by_depth.items()},
            "cells": [
                {"length": c.length, "depth": c.depth, **c.share.to_json(), "std": c.std,
                 "statuses": dict(c.statuses)}
                for c in self.cells.values()
            ],
        }


def _depth_key(depth: float) -> str:
    return f"{depth:g}"


def _share(scores: Iterable[float]) -> Share:
    values = list(scores)
    return Share(total=float(sum(values)), n=len(values))


def grid(records: Iterable[Mapping[str, Any]]) -> Grid:
    """Statistics of one record per (length, depth, trial); scores outside 0..1 are a caller's bug."""
    scores: dict[tuple[int, float], list[float]] = {}
    statuses: dict[tuple[int, float], Counter[str]] = {}
    all_statuses: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    for record in records:
        key = (int(record["length"]), float(record["depth"]))
        statuses.setdefault(key, Counter())[record["status"]] += 1
        scores.setdefault(key, [])
        all_statuses[record["status"]] += 1
        if record.get("score") is not None:
            scores[key].append(float(record["score"]))
        if record["status"] == "error":
            error = record.get("error") or {}
            classes[str(error.get("class") or "unknown")] += 1
    lengths = tuple(sorted({length for length, _ in scores}))
    depths = tuple(sorted({depth for _, depth in scores}))
    cells = {
        key: CellStats(length=key[0], depth=key[1], share=_share(values), scores=tuple(values),
                       statuses=dict(statuses[key]))
        for key, values in sorted(scores.items())
    }
    return Grid(
        lengths=lengths,
        depths=depths,
        cells=cells,
        overall=_share(s for values in scores.values() for s in values),
        by_length={n: _share(s for (length, _), v in scores.items() if length == n for s in v) for n in lengths},
        by_depth={d: _share(s for (_, depth), v in scores.items() if depth == d for s in v) for d in depths},
        statuses=dict(all_statuses),
        error_classes=dict(classes),
    )
