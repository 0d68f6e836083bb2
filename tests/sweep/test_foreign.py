"""Other tools' results read as runs: gkamradt's per-cell JSON and needlehaystack 2.x JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from haystack_eval import StoreError, load_run


def gkamradt_file(folder: Path, length: int, depth: float, score: int | None, model: str = "gpt-4-1106-preview",
                  name: str | None = None) -> None:
    """One result file as LLMTest_NeedleInAHaystack writes it (the file name is never parsed)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "model": model, "context_length": length, "depth_percent": depth, "version": 1,
        "needle": "\nThe best thing to do in San Francisco is eat a sandwich.\n",
        "model_response": "Eat a sandwich." if score == 10 else "I don't know.", "score": score,
        "test_duration_seconds": 1.5, "test_timestamp_utc": f"2024-03-0{1 + length // 1000} 10:00:00+0000",
    }
    (folder / (name or f"x_len_{length}_depth_{int(depth * 100)}_results.json")).write_text(json.dumps(data))


def needlehaystack_row(length: int, depth: float, value: float | None, status: str = "ok",
                       seed: int | None = None) -> dict[str, Any]:
    """One row of needlehaystack 2.x's results JSONL (schema_version 2)."""
    return {
        "schema_version": 2, "run_name": "r", "model_id": "openai/gpt-4o", "model_request_name": "gpt-4o",
        "task_type": "single", "context_length": length, "target_depth_percent": depth,
        "recipe": {"haystack": {}, "inserter": "single_depth", "final_context_token_count": length - 3,
                   "needle_placements": [{"text": "n", "insertion_token_index": 5,
                                          "actual_depth_percent": depth + 0.4}]},
        "needle_metadata": {}, "expected_answer": "sandwich", "prompt_question": "What is best?",
        "response": "sandwich" if value else None, "score": None if value is None else {"value": value, "details": {}},
        "usage": {"input_tokens": length, "output_tokens": 5}, "cost_usd": None, "duration_seconds": 0.5,
        "status": status, "error": None if status == "ok" else "HTTP 500", "timestamp_utc": "2025-05-30T03:37:00Z",
        "seed": seed,
    }


def test_gkamradt_folder_scores_map_1_to_10_onto_0_to_1(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    gkamradt_file(folder, 1000, 0.0, 10)
    gkamradt_file(folder, 1000, 50.0, 1)
    gkamradt_file(folder, 2000, 0.0, 7)
    gkamradt_file(folder, 2000, 50.0, None, name="odd-name.json")
    (folder / "notes.json").write_text('{"other": 1}')  # unrelated JSON beside the results is ignored
    run = load_run(folder)
    assert run.source == "gkamradt" and run.model == "gpt-4-1106-preview" and run.task == "single"
    g = run.grid()
    assert g.lengths == (1000, 2000) and g.depths == (0.0, 50.0)
    assert [g.cell(1000, 0.0).mean, g.cell(1000, 50.0).mean] == [1.0, 0.0]  # type: ignore[union-attr]
    assert g.cell(2000, 0.0).mean == pytest.approx(6 / 9)  # type: ignore[union-attr]
    assert g.statuses == {"ok": 3, "error": 1}
    assert run.date == "2024-03-03 10:00:00+0000"  # newest timestamp inside the files
    assert {r["score_raw"] for r in run.records} == {10, 1, 7, None}


def test_gkamradt_repeated_cells_become_trials(tmp_path: Path) -> None:
    gkamradt_file(tmp_path, 1000, 0.0, 10, name="a.json")
    gkamradt_file(tmp_path, 1000, 0.0, 1, name="b.json")
    run = load_run(tmp_path)
    assert sorted(r["trial"] for r in run.records) == [0, 1]
    assert run.grid().cell(1000, 0.0).mean == 0.5  # type: ignore[union-attr]


def test_needlehaystack_jsonl_file_or_folder(tmp_path: Path) -> None:
    rows = [needlehaystack_row(1000, 0.0, 1.0), needlehaystack_row(1000, 100.0, 0.5),
            needlehaystack_row(2000, 0.0, None, status="error"),
            needlehaystack_row(2000, 0.0, 1.0)]  # a resumed cell: the newest row counts
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn": ')
    for where in (path, tmp_path):
        run = load_run(where)
        assert run.source == "needlehaystack" and run.model == "openai/gpt-4o"
        g = run.grid()
        assert g.overall.mean == pytest.approx(2.5 / 3) and g.statuses == {"ok": 3}
        first = next(r for r in run.records if r["length"] == 1000 and r["depth"] == 0.0)
        assert (first["tokens"], first["depth_actual"], first["expected"]) == (997, 0.4, "sandwich")


def test_needlehaystack_error_rows_are_errors_not_wrong_answers(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(json.dumps(needlehaystack_row(1000, 0.0, None, status="error")) + "\n")
    run = load_run(tmp_path)
    assert run.grid().overall.mean is None
    assert run.records[0]["error"]["message"] == "HTTP 500"


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: None, "has no manifest.json and no gkamradt or needlehaystack results"),
    (lambda d: (gkamradt_file(d, 1000, 0, 10, model="a", name="1.json"),
                gkamradt_file(d, 1000, 50, 10, model="b", name="2.json")), "holds results of 2 models"),
    (lambda d: (d / "x.json").write_text(json.dumps({"model": "m", "context_length": "long", "depth_percent": 0,
                                                      "model_response": "", "score": 1})), "'context_length' is"),
])
def test_unusable_foreign_folders_are_clear_errors(tmp_path: Path, make: Any, message: str) -> None:
    make(tmp_path)
    with pytest.raises(StoreError, match=message):
        load_run(tmp_path)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        load_run(tmp_path / "nope")
