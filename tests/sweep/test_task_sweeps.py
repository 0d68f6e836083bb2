"""A sweep of every task kind through the scripted backend: records, partial credit, hallucination rate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from haystack_eval.backends import Capabilities, Reply, Request, Usage
from haystack_eval.config import load_config
from haystack_eval.sweep import arun

CONFIG = """\
name: kinds
model: {{provider: scripted, name: {name}, tokenizer: tiktoken:o200k_base}}
haystack: {{filler: essays, lengths: [800, 1600], depths: {depths}}}
task: {{trials: 2, {task}}}
scoring: {{method: {method}}}
"""
KINDS = {
    "multi": "kind: multi, count: 3",
    "multikey": "kind: multikey, value_type: uuids",
    "multivalue": "kind: multivalue, count: 3, value_type: words",
    "multiquery": "kind: multiquery, count: 2",
    "latent": "kind: latent",
    "distractor": "kind: distractor",
    "absent": "kind: absent",
}


def _write(write_config: Callable[..., Path], kind: str, name: str = "oracle", method: str = "contains") -> Path:
    depths = "[0]" if kind == "absent" else "[0, 50, 100]"
    return write_config(CONFIG.format(name=name, depths=depths, task=KINDS[kind], method=method))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_oracle_sweeps_every_kind(kind: str, write_config: Callable[..., Path], tmp_path: Path) -> None:
    run = asyncio.run(arun(_write(write_config, kind), out=tmp_path / "out"))
    cells = 2 * 2 * (1 if kind == "absent" else 3)
    assert len(run.records) == cells and run.statuses == {"ok": cells} and run.accuracy == 1.0
    record = run.records[0]
    assert record["task"] == kind and isinstance(record["answers"], list)
    if kind in ("multi", "multivalue", "multiquery"):
        assert record["needle_scores"] == [1.0] * len(record["answers"])
    if kind in ("multi", "multikey", "multivalue", "multiquery", "distractor"):
        roles = [n["role"] for n in record["needles"]]
        assert roles.count("needle") == len(record["answers"])
    if kind == "absent":
        assert record["answers"] == [] and record["depth_actual"] is None and record["response"] == "not stated"


def test_an_answer_to_an_absent_fact_is_a_hallucination(write_config: Callable[..., Path], tmp_path: Path) -> None:
    run = asyncio.run(arun(_write(write_config, "absent", name="'canned:It is 438.'"), out=tmp_path / "out"))
    assert run.accuracy == 0.0  # hallucination rate 1 - 0 = 100%
    assert {r["score_note"] for r in run.records} == {"answered what the document does not say"}


class FirstOnly:
    """Answers with the first expected answer only: a model that finds one needle of several."""

    async def capabilities(self) -> Capabilities:
        return Capabilities()

    async def generate(self, request: Request) -> Reply:
        ctx = request.context
        return Reply(ctx.answers[0], "stop", Usage(input_tokens=ctx.tokens, output_tokens=3), 0.0, None, False)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("method", "score"), [("contains", 1 / 3), ("all", 1 / 3), ("any", 1.0)])
def test_several_needles_get_partial_credit(method: str, score: float, write_config: Callable[..., Path],
                                            tmp_path: Path) -> None:
    config = load_config(_write(write_config, "multi", method=method))
    run = asyncio.run(arun(config, out=tmp_path / "out", backend=FirstOnly()))
    assert all(r["needle_scores"] == [1.0, 0.0, 0.0] for r in run.records)
    assert run.accuracy == pytest.approx(score)


def test_the_grid_is_indexed_by_the_first_needles_depth(write_config: Callable[..., Path], tmp_path: Path) -> None:
    run = asyncio.run(arun(_write(write_config, "multi"), out=tmp_path / "out"))
    grid = run.grid()
    assert grid.depths == (0.0, 50.0, 100.0) and grid.lengths == (800, 1600)
    by_cell: dict[Any, list[float]] = {}
    for r in run.records:
        by_cell.setdefault(r["depth"], []).append(r["needles"][0]["depth_actual"])
    assert max(by_cell[0.0]) < 10 and min(by_cell[100.0]) > 90


def test_reports_give_the_hallucination_rate_of_the_absent_task(write_config: Callable[..., Path],
                                                                  tmp_path: Path) -> None:
    from haystack_eval.reports.html import render_report
    from haystack_eval.reports.markdown import render_summary

    run = asyncio.run(arun(_write(write_config, "absent", name="'canned:It is 438.'"), out=tmp_path / "out"))
    assert "**Hallucination rate** (answers given where the document holds none): 100.0%" in render_summary([run])
    assert "Hallucination rate" in render_report([run])


def test_a_sweep_graded_by_a_judge_records_its_verdicts(write_config: Callable[..., Path], tmp_path: Path) -> None:
    """The model is the scripted oracle; the judge is a model behind real HTTP (the fake server)."""
    from tests.fakes.provider_server import FakeProvider

    verdicts = iter(["CORRECT", "INCORRECT", "Hmm, hard to say."] * 10)
    with FakeProvider(answer=lambda _document, _question: next(verdicts)) as fake:
        path = write_config(CONFIG.format(name="oracle", depths="[0, 50, 100]", task="kind: single",
                                          method="judge").replace(
            "scoring: {method: judge}",
            f"scoring: {{method: judge, judge: {{provider: openai-compatible, name: judge, base_url: '{fake.openai_base_url}'}}}}")
            .replace("trials: 2", "trials: 1") + "run: {concurrency: 1}\n")
        run = asyncio.run(arun(path, out=tmp_path / "out"))
    by_order = sorted(run.records, key=lambda r: (r["length"], r["depth"]))
    assert [r["status"] for r in by_order] == ["ok", "ok", "unscored"] * 2
    assert [r["score"] for r in by_order] == [1.0, 0.0, None] * 2
    assert by_order[2]["score_note"].startswith("judge reply did not parse")
    assert run.accuracy == 0.5  # the unscored replies count neither way
