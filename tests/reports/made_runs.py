"""Run directories written by hand in our own format, with exactly the scores a test needs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Scores = Mapping[tuple[int, float], Sequence[float | None]]  # (length, depth) -> one score per trial; None = error


def write_run(path: Path, scores: Scores, *, check: dict[str, Any] | None = None, name: str = "made",
              model: str = "oracle", config_path: str | None = None) -> Path:
    """A run directory (manifest.json + results.jsonl) whose records carry the given scores."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "model": {"provider": "scripted", "name": model}, "task": {"kind": "single"},
              "check": check}
    manifest = {"tool": "haystack-eval", "schema_version": 1, "name": name, "state": "complete",
                "created": "2026-11-29T10:00:00.000+00:00", "updated": "2026-11-29T10:05:00.000+00:00",
                "model": {"provider": "scripted", "name": model, "base_url": None},
                "config": config, "config_path": config_path}
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    lines = []
    for (length, depth), trials in scores.items():
        for trial, score in enumerate(trials):
            error = {"class": "ServerError", "message": "HTTP 500", "status": 500} if score is None else None
            lines.append(json.dumps({
                "length": length, "depth": depth, "trial": trial, "question": "What is the code?",
                "expected": "K-7", "response": None if score is None else ("K-7" if score else "no idea"),
                "score": score, "status": "error" if score is None else "ok", "error": error,
            }))
    (path / "results.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def uniform(lengths: Sequence[int], depths: Sequence[float], trials: Sequence[float | None]) -> dict[
        tuple[int, float], Sequence[float | None]]:
    """The same trial scores in every cell of a lengths × depths grid."""
    return {(length, depth): trials for length in lengths for depth in depths}
