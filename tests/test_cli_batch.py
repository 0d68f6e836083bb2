"""run --batch from the command line: the summary, report and check as for a normal run, and clear refusals."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.batch_api import FakeBatches
from tests.fakes.provider_server import FakeProvider
from tests.sweep.test_batch import config_text
from tests.test_cli import SCRIPTED, run


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HAYSTACK_TEST_KEY", "sk-batch-test")


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(batches=FakeBatches(polls=1)) as server:
        yield server


def test_run_batch_writes_the_same_run_directory_report_and_check(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                  write_config: Callable[..., Path],
                                                                  fake: FakeProvider) -> None:
    path = write_config(config_text("openai", fake) + "check: {min_accuracy: 0.5}\n")
    code, out, err = run(capsys, "run", str(path), "--out", "out", "--batch")
    assert code == 0, err
    assert out.startswith("batched: 12 cells: accuracy ") and "12 ok, 0 error" in out and "; cost $" in out
    assert "submitted batch batch_" in err
    assert {"report.html", "summary.md", "heatmap.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["state"] == "complete" and manifest["batches"][0]["state"] == "collected"
    code, _, err = run(capsys, "check", "out")
    assert code == 0, err


def test_a_provider_without_a_batch_api_is_refused_in_one_line(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    code, out, err = run(capsys, "run", SCRIPTED, "--batch", "-q")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "model.provider: provider 'scripted' has no batch API" in err and "run without --batch" in err
    assert not (tmp_path / "heatmaps").exists(), "refused before anything was created"


def test_a_compatible_server_without_batches_is_refused_in_one_line(capsys: pytest.CaptureFixture[str],
                                                                    write_config: Callable[..., Path]) -> None:
    with FakeProvider() as plain:  # serves chat completions only: /v1/files is a 404
        text = config_text("openai", plain).replace("provider: openai,", "provider: openai-compatible,")
        code, out, err = run(capsys, "run", str(write_config(text)), "--out", "out", "--batch", "-q")
        assert not any(r.path == "/v1/chat/completions" for r in plain.requests)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert "has no batch API (" in err and "run without --batch" in err


def test_batch_with_a_cost_limit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", SCRIPTED, "--batch", "--max-cost", "1", "-q")
    assert code == 2 and len(err.splitlines()) == 1 and "--max-cost cannot stop a batch halfway" in err
