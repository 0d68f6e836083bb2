"""The Python API of a run read back: grid() and to_pandas() for notebooks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from haystack_eval import load_run, run
from haystack_eval.config import load_config
from tests.conftest import MINIMAL_CONFIG
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


def test_prices_are_left_out_of_the_fingerprint(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """A price changes what a cell costs, never what it measures: a run resumes after prices change."""
    judged = MINIMAL_CONFIG + "scoring: {method: judge, judge: {provider: scripted, name: 'canned:CORRECT'}}\n"
    first = run(load_config(write_config(judged)), out=tmp_path / "r")
    priced = judged.replace("tokenizer: tiktoken:o200k_base}",
                            "tokenizer: tiktoken:o200k_base, prices: {input: 3, output: 15}}")
    assert priced != judged
    again = run(load_config(write_config(priced, "priced.yaml")), out=tmp_path / "r")  # resumes: nothing changed
    assert again.manifest["fingerprint"] == first.manifest["fingerprint"]
    assert again.records == first.records, "no cell was asked again"
    measures = again.manifest["measures"]
    assert "prices" not in measures["model"] and "prices" not in measures["scoring"]["judge"]
    assert again.manifest["config"]["model"]["prices"] == {"input": 3.0, "output": 15.0, "cached_input": None,
                                                           "cache_write": None}
    assert again.manifest["prices"]["source"] == "model.prices"
