"""Results of other tools read as runs: gkamradt's per-cell JSON files and needlehaystack 2.x JSONL.

Each foreign row becomes a record with our field names (length, depth, trial, status, score in 0..1,
response, expected, error), and a synthesised manifest says where it came from. Nothing is parsed
out of file names: every field comes from inside the files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from haystack_eval.errors import StoreError

__all__ = ["GKAMRADT", "NEEDLEHAYSTACK", "looks_foreign", "read_foreign"]

GKAMRADT = "gkamradt"
NEEDLEHAYSTACK = "needlehaystack"
_GKAMRADT_KEYS = {"model_response", "score", "context_length", "depth_percent"}
_NEEDLEHAYSTACK_KEYS = {"context_length", "target_depth_percent", "status", "model_id"}


def _json_files(path: Path, suffix: str) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == suffix else []
    return sorted(p for p in path.glob(f"*{suffix}") if p.is_file())


def looks_foreign(path: Path) -> str | None:
    """Which foreign format ``path`` (a file or a folder) holds, judged by the keys of its first row."""
    for file in _json_files(path, ".jsonl"):
        first = _first_line(file)
        if first is not None and _NEEDLEHAYSTACK_KEYS <= first.keys():
            return NEEDLEHAYSTACK
    for file in _json_files(path, ".json"):
        try:
            data = json.loads(file.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and _GKAMRADT_KEYS <= data.keys():
            return GKAMRADT
    return None


def _first_line(file: Path) -> dict[str, Any] | None:
    try:
        with file.open("r", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    data = json.loads(line)
                    return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
    return None


def read_foreign(path: Path, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A synthesised manifest and our records for a foreign result file or folder."""
    rows = _gkamradt_rows(path) if kind == GKAMRADT else _needlehaystack_rows(path)
    if not rows:
        raise StoreError(f"holds no {kind} results", where=str(path), fix="point at the folder the tool wrote")
    models = sorted({str(r["model"]) for r in rows})
    if len(models) > 1:
        raise StoreError(f"holds results of {len(models)} models ({', '.join(models[:3])})", where=str(path),
                         fix="put each model's files in a folder of its own")
    records = _number_trials(rows)
    stamps = sorted(str(r["ts"]) for r in records if r.get("ts"))
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    manifest = {
        "tool": kind, "source_format": kind, "name": path.stem if path.is_file() else path.name,
        "model": {"provider": None, "name": models[0], "base_url": None},
        "config": None, "task": records[0].get("task", "single"),
        "created": stamps[0] if stamps else None, "updated": stamps[-1] if stamps else None,
        "state": "partial" if statuses.get("error") else "complete", "statuses": statuses,
        "cells": len(records),
    }
    return manifest, records


def _number_trials(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give repeated (length, depth) rows trial numbers 0, 1, ... in file order (unless they carry one)."""
    seen: dict[tuple[int, float], int] = {}
    out = []
    for row in rows:
        key = (row["length"], row["depth"])
        trial = row.get("trial")
        if trial is None:
            trial = seen.get(key, 0)
            seen[key] = trial + 1
        out.append({**row, "trial": trial})
    # The newest row of a cell counts (both tools append on resume).
    return list({(r["length"], r["depth"], r["trial"]): r for r in out}.values())


def _number(value: Any, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StoreError(f"field {field!r} is {value!r}, not a number", where=where,
                         fix="repair or remove that file")
    return float(value)


def _gkamradt_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for file in _json_files(path, ".json"):
        try:
            data = json.loads(file.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"is not readable JSON ({type(exc).__name__})", where=str(file),
                             fix="repair or remove that file") from None
        if not isinstance(data, dict) or not _GKAMRADT_KEYS <= data.keys():
            continue  # other JSON beside the results (a config, say) is not ours to judge
        raw = data["score"]
        where = str(file)
        # Their LLM judge grades 1 (unrelated) .. 10 (exact); 1..10 maps linearly onto 0..1.
        score = None if raw is None else min(1.0, max(0.0, (_number(raw, "score", where) - 1) / 9))
        rows.append({
            "length": int(_number(data["context_length"], "context_length", where)),
            "depth": _number(data["depth_percent"], "depth_percent", where),
            "model": data.get("model") or "unknown", "needle_id": None,
            "question": data.get("retrieval_question"), "expected": data.get("needle"),
            "response": data["model_response"], "score": score, "score_raw": raw,
            "status": "ok" if score is not None else "error",
            "error": None if score is not None else {"class": "Unscored", "message": "no score", "status": None},
            "latency_s": data.get("test_duration_seconds"), "ts": data.get("test_timestamp_utc"),
            "source_file": file.name,
        })
    return rows


def _needlehaystack_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for file in _json_files(path, ".jsonl"):
        for number, line in _lines(file):
            where = f"{file}:{number}"
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a torn last line left by a crash: the tool itself skips it too
            if not isinstance(data, dict) or not _NEEDLEHAYSTACK_KEYS <= data.keys():
                raise StoreError("is not a needlehaystack 2.x result row", where=where,
                                 fix="point at the JSONL file the tool wrote")
            score = data.get("score")
            value = _number(score["value"], "score.value", where) if isinstance(score, dict) else None
            ok = data["status"] == "ok" and value is not None
            recipe = data.get("recipe") or {}
            placements = recipe.get("needle_placements") or []
            usage = data.get("usage")
            rows.append({
                "length": int(_number(data["context_length"], "context_length", where)),
                "depth": _number(data["target_depth_percent"], "target_depth_percent", where),
                "trial": data.get("seed") or 0,  # their resume key: one row per (cell, seed), newest wins
                "tokens": recipe.get("final_context_token_count"),
                "depth_actual": placements[0].get("actual_depth_percent") if placements else None,
                "model": data["model_id"], "task": data.get("task_type", "single"),
                "question": data.get("prompt_question"), "expected": data.get("expected_answer"),
                "response": data.get("response"), "score": value if ok else None,
                "status": "ok" if ok else "error",
                "error": None if ok else {"class": "ProviderError", "message": str(data.get("error")), "status": None},
                "usage": usage, "cost_usd": data.get("cost_usd"),
                "latency_s": data.get("duration_seconds"), "ts": data.get("timestamp_utc"),
            })
    return rows


def _lines(file: Path) -> Iterable[tuple[int, str]]:
    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"is not readable ({type(exc).__name__})", where=str(file),
                         fix="repair or remove that file") from None
    return ((n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip())
