"""The run and estimate commands: exit codes, the summary, resume, dry runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from haystack_eval.reports.markdown import render_summary
from haystack_eval.sweep import load_run
from haystack_eval.sweep.store import RESULTS
from tests.fakes.provider_server import FakeProvider
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
    numbers = json.loads(out)
    assert set(numbers) == {"cells", "finished", "to_ask", "skipped", "calls", "input_tokens", "output_tokens_max",
                            "output_tokens_typical", "context_window", "cost_usd", "prices", "scenarios",
                            "assumptions"}
    assert (numbers["cells"], numbers["calls"], numbers["output_tokens_max"]) == (132, 132, 132 * 32)
    assert 495_000 - 2 * 132 <= numbers["input_tokens"] <= 495_000, "built prompts: exact, within 2 of each length"
    assert numbers["cost_usd"] == 0.0 and numbers["prices"]["source"].startswith("local model")
    assert set(numbers["scenarios"]) == {"plain", "cached", "cached_warm", "batch"}
    for scenario in numbers["scenarios"].values():
        assert set(scenario) == {"input_tokens", "cached_input_tokens", "cache_write_tokens", "cached_share",
                                 "cost_usd", "cost_usd_typical"}
    assert numbers["scenarios"]["cached_warm"]["cached_input_tokens"] > 0
    assert all(isinstance(line, str) for line in numbers["assumptions"])


def test_estimate_prints_tokens_costs_and_assumptions(capsys: pytest.CaptureFixture[str],
                                                      write_config: Callable[..., Path]) -> None:
    path = write_config(Path(SCRIPTED).read_text().replace("provider: scripted\n  name: oracle",
                                                           "provider: openai\n  name: gpt-4o"))
    code, out, err = run(capsys, "estimate", str(path))
    assert code == 0, err
    assert "input tokens: 49" in out and "output tokens (typical):" in out
    assert "prices (USD per million tokens): input " in out
    for label in ("plain requests: $", "caching, naive order: $", "caching, as run sends: $", "batch API: $"):
        assert label in out
    assert "- prices: genai-prices " in out and "128-token steps" in out and "`run --batch` sends them" in out


MAX_COST = """\
name: budget
model: {{provider: openai-compatible, name: fake-model, base_url: '{url}', tokenizer: tiktoken:o200k_base,
        params: {{max_output_tokens: 16}}{prices}}}
haystack: {{filler: essays, lengths: [1000, 2000], depths: [0, 50, 100]}}
task: {{trials: 2}}
run: {{concurrency: 2}}
"""
PRICES = ", prices: {input: 10, output: 10}"  # USD per million tokens: about 1 cent a 1K cell


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


def test_max_cost_stops_sending_and_the_run_is_partial(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       write_config: Callable[..., Path],
                                                       provider: FakeProvider) -> None:
    path = write_config(MAX_COST.format(url=provider.openai_base_url, prices=PRICES))
    code, out, err = run(capsys, "run", str(path), "--out", "out", "-q", "--no-report", "--max-cost", "0.05")
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("partial run: stopped before the cost limit of $0.05: $0.0")
    assert "cell(s) not asked; raise --max-cost and run the same command to go on" in lines[0]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["state"] == "partial" and manifest["stopped_by"] == "max_cost"
    assert manifest["partial_reason"] in lines[0] and manifest["prices"]["source"] == "model.prices"
    kept = load_run(tmp_path / "out")
    assert 0 < len(kept.records) < 12 and all(r["status"] == "ok" and r["cost_usd"] > 0 for r in kept.records)
    assert kept.cost_usd is not None and kept.cost_usd <= 0.05
    assert len([r for r in provider.requests if r.path == "/v1/chat/completions"]) == len(kept.records)
    assert f"{len(kept.records)} cells:" in out and f"cost ${kept.cost_usd:,.4f}" in out
    assert "**Partial run**: stopped before the cost limit" in render_summary([kept])

    before = (tmp_path / "out" / RESULTS).read_bytes()
    code, out, err = run(capsys, "run", str(path), "--out", "out", "-q", "--no-report", "--max-cost", "5")
    assert code == 0, err
    assert (tmp_path / "out" / RESULTS).read_bytes().startswith(before), "finished records are kept"
    done = load_run(tmp_path / "out")
    assert len(done.records) == 12 and done.complete and done.partial_reason is None
    assert "stopped_by" not in done.manifest


def test_max_cost_without_prices_is_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str],
                                                                    write_config: Callable[..., Path],
                                                                    provider: FakeProvider) -> None:
    path = write_config(MAX_COST.format(url=provider.openai_base_url, prices=""))
    code, out, err = run(capsys, "run", str(path), "--out", "out", "-q", "--max-cost", "1")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "model.prices: a cost limit needs prices, and genai-prices " in err
    assert "has no price for openai-compatible/fake-model; set model.prices: {input: ..., output: ...}" in err
    assert provider.requests == [], "not even the model list was asked for"


def test_an_unpriced_model_runs_with_one_notice_and_null_costs(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                               write_config: Callable[..., Path],
                                                               provider: FakeProvider) -> None:
    path = write_config(MAX_COST.format(url=provider.openai_base_url, prices=""))
    code, _, err = run(capsys, "run", str(path), "--out", "out", "--no-report")
    assert code == 0
    assert err.count("has no price for openai-compatible/fake-model") == 1 and "note: genai-prices " in err
    assert all(r["cost_usd"] is None for r in load_run(tmp_path / "out").records)


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
