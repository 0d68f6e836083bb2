"""The Python API of a run read back: grid() and to_pandas() for notebooks."""

from __future__ import annotations

from pathlib import Path

from haystack_eval import load_run
from tests.reports.made_runs import write_run


def test_grid_and_to_pandas(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1, 0], (2000, 50): [None, 1]}))
    assert (run.name, run.model, run.task, run.source) == ("made", "scripted/oracle", "single", "haystack-eval")
    assert run.grid().overall.mean == 2 / 3
    frame = run.to_pandas()
    assert len(frame) == 4
    assert frame.groupby("length")["score"].mean().to_dict() == {1000: 0.5, 2000: 1.0}  # NaN (error) left out
    assert frame["error"].dropna().tolist() == ["ServerError"]  # the class, flat, for filtering
    assert set(frame["status"]) == {"ok", "error"}


def test_a_file_of_a_run_directory_stands_for_it(tmp_path: Path) -> None:
    path = write_run(tmp_path / "r", {(1000, 0): [1]})
    assert load_run(path / "results.jsonl").path == path
