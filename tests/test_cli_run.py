"""The run and estimate commands: exit codes, the summary, resume, dry runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from haystack_eval.sweep.store import RESULTS
from tests.test_cli import SCRIPTED, run


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_run_the_scripted_config_writes_the_run_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "run", SCRIPTED)
    assert code == 0, err
    assert out.startswith("scripted: 132 cells: accuracy 100.0%; 132 ok, 0 error, 0 truncated, 0 skipped")
    assert "heatmaps/scripted/results.jsonl" in out
    folder = tmp_path / "heatmaps" / "scripted"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["state"] == "complete" and manifest["cells"] == 132 and manifest["schema_version"] == 1
    assert manifest["filler"]["sha256"] and manifest["tokenizer"] == "tiktoken:o200k_base"
    assert len((folder / RESULTS).read_text().splitlines()) == 132
    assert "[132/132]" in err, "plain progress lines when stderr is not a terminal"


def test_running_again_resumes_without_asking_anything(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run(capsys, "run", SCRIPTED, "-q")
    results = tmp_path / "heatmaps" / "scripted" / RESULTS
    before = results.read_bytes()
    code, _, _ = run(capsys, "run", SCRIPTED, "-q")
    assert code == 0 and results.read_bytes() == before


def test_dry_run_prints_the_plan_and_sends_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "run", SCRIPTED, "--dry-run")
    assert code == 0
    assert "cells: 132" in out and "to ask: 132" in out and "input tokens: 495,000" in out
    assert "nothing was sent" in out and not (tmp_path / "heatmaps").exists()


def test_estimate_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", SCRIPTED, "--json")
    assert code == 0
    assert json.loads(out) == {"cells": 132, "finished": 0, "to_ask": 132, "skipped": 0, "calls": 132,
                               "input_tokens": 495_000, "output_tokens_max": 132 * 32, "context_window": None,
                               "cost_usd": None}


def test_errors_make_the_run_fail_with_exit_1(capsys: pytest.CaptureFixture[str],
                                              write_config: Callable[..., Path]) -> None:
    path = write_config(Path(SCRIPTED).read_text().replace("name: oracle", "name: unavailable")
                        .replace("run: {concurrency: 4}", "run: {concurrency: 4, max_retries: 0}"))
    code, out, err = run(capsys, "run", str(path), "--out", "out", "-q")
    assert code == 1
    assert "132 error" in out and "run the same command again to retry them" in err


def test_a_busy_or_foreign_out_directory_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    code, out, err = run(capsys, "run", SCRIPTED, "--out", "mine")
    assert code == 2 and "is not an empty directory or a haystack-eval run" in err and out == ""
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_a_changed_config_is_refused_with_the_way_out(capsys: pytest.CaptureFixture[str],
                                                      write_config: Callable[..., Path]) -> None:
    run(capsys, "run", SCRIPTED, "--out", "shared", "-q")
    changed = write_config(Path(SCRIPTED).read_text().replace("[1000, 2000, 4000, 8000]", "[1000, 2000]"))
    code, _, err = run(capsys, "run", str(changed), "--out", "shared")
    assert code == 2 and "haystack.lengths changed" in err and "--no-resume" in err
    code, out, _ = run(capsys, "run", str(changed), "--out", "shared", "--no-resume", "-q")
    assert code == 0 and "scripted: 66 cells" in out
